"""Refit on all the data the models whose output is published: the challenger when it is
promoted (or when an A/B test publishes its lists too), and every model that yields
similar items, explanations or tables of its own."""

from __future__ import annotations

import logging
import shutil

from pipelines.common import fit_full, run_info
from recmill.config import Settings
from recmill.errors import ModelSkipped
from recmill.io import Layout, read_json, write_json
from recmill.evaluation.gate import PROMOTE
from recmill.models import REGISTRY
from recmill.registry import Registry

log = logging.getLogger("recmill")


def models_to_refit(settings: Settings, selection: dict) -> list[str]:
    def published(cls) -> bool:
        return cls.has_similar_items or cls.has_explanations or cls.publishes_tables

    challenger_lists = selection["decision"] == PROMOTE or settings.gate.ab_test
    return [
        m for m in settings.train.models
        if m not in selection["skipped"] and ((m == selection["chosen"] and challenger_lists) or published(REGISTRY[m]))
    ]


def run(settings: Settings) -> dict:
    layout = Layout(settings)
    selection = read_json(layout.selection)
    registry = Registry(settings.tracking)
    pipeline_run = run_info(settings)["run_id"]
    shutil.rmtree(layout.refit, ignore_errors=True)
    fitted_runs = {}
    for model in models_to_refit(settings, selection):
        try:
            _, mlflow_run = fit_full(settings, model, pipeline_run, layout.model_dir(model, "full"))
        except ModelSkipped as exc:
            # all the data can hold more items than the training slices did
            if model == selection["chosen"] and selection["decision"] == PROMOTE:
                raise
            log.warning("%s", exc)
            continue
        fitted_runs[model] = mlflow_run
        if model == selection["chosen"]:
            registry.set_full_run(selection["challenger_version"], mlflow_run)
    result = {"chosen": selection["chosen"], "mlflow_run_ids": fitted_runs}
    write_json(layout.refit / "refit.json", result)
    return result
