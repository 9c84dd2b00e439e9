"""Refit on all the data the models whose output is published: the challenger when it is
promoted (or when an A/B test publishes its lists too), and every model that yields
similar items, explanations or tables of its own. A model is trained again on every event,
or, when train.refit refreshes, its test fit is refreshed: every user's whole history folded
in, the item side as it was. Each model's refit is independent (the flow runs them
side by side); each leaves data/refit/<model>.json naming its run and how it was made."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from recmill.config import Settings
from recmill.errors import ModelSkipped
from recmill.evaluation.gate import PROMOTE
from recmill.fits import fit_full, keep_fit_data, refitted, refreshes, shortened, trains_shorter
from recmill.io import Layout, read_json, run_info, write_json
from recmill.models import model_class
from recmill.registry import Registry

log = logging.getLogger("recmill")


def models_to_refit(settings: Settings, selection: dict) -> list[str]:
    def published(cls) -> bool:
        return cls.has_similar_items or cls.has_explanations or cls.publishes_tables

    challenger_lists = selection["decision"] == PROMOTE or settings.gate.ab_test
    return [
        m for m in settings.train.models
        if m not in selection["skipped"] and ((m == selection["chosen"] and challenger_lists) or published(model_class(m)))
    ]


def refresh_from(settings: Settings, model: str) -> Path | None:
    """The test fit this refit refreshes instead of training again (train.refit), if any."""
    test_fit = Layout(settings).model_dir(model, "test")
    if test_fit.is_dir() and refreshes(settings, model):
        return test_fit
    return None


def run_model(settings: Settings, model: str) -> dict:
    """Refit one model into data/refit/<model>; the record says this run did it."""
    keep_fit_data("full")
    layout = Layout(settings)
    selection = read_json(layout.selection)
    pipeline_run = run_info(settings)["run_id"]
    shutil.rmtree(layout.model_dir(model, "full"), ignore_errors=True)
    refresh = refresh_from(settings, model)
    test_fit = layout.model_dir(model, "test")
    shorter = refresh is None and test_fit.is_dir() and trains_shorter(settings, model)
    record = {"model": model, "run_id": pipeline_run, "method": "refresh" if refresh else "shortened fit" if shorter else "fit"}
    try:
        own = shortened(settings, model, test_fit) if shorter else settings
        _, record["mlflow_run_id"] = fit_full(own, model, pipeline_run, layout.model_dir(model, "full"), refresh)
    except ModelSkipped as exc:
        # all the data can hold more items than the training slices did
        if model == selection["chosen"] and selection["decision"] == PROMOTE:
            raise
        log.warning("%s", exc)
        record["skipped"] = str(exc)
    if model == selection["chosen"] and "mlflow_run_id" in record:
        Registry(settings.tracking).set_full_run(selection["challenger_version"], record["mlflow_run_id"])
    write_json(layout.refit / f"{model}.json", record)
    return record


def run(settings: Settings) -> dict:
    """Every model to refit, one after the other (what `python -m pipelines refit` runs)."""
    shutil.rmtree(Layout(settings).refit, ignore_errors=True)
    selection = read_json(Layout(settings).selection)
    records = [run_model(settings, model) for model in models_to_refit(settings, selection)]
    return {"chosen": selection["chosen"], "mlflow_run_ids": refitted(settings), "records": records}
