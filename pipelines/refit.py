"""Refit on all the data the models whose output is published: the chosen one, and every
model that yields similar items."""

from __future__ import annotations

import shutil

from pipelines.common import fit_model, run_info, tracked_params
from recmill.config import Settings
from recmill.io import Layout, read_json, write_json
from recmill.models import REGISTRY
from recmill.tracking import Tracker


def models_to_refit(settings: Settings, chosen: str) -> list[str]:
    return [m for m in settings.train.models if m == chosen or REGISTRY[m].has_similar_items]


def run(settings: Settings) -> dict:
    layout = Layout(settings)
    chosen = read_json(layout.selection)["chosen"]
    tracker = Tracker(settings.tracking)
    pipeline_run = run_info(settings)["run_id"]
    shutil.rmtree(layout.refit, ignore_errors=True)
    fitted_runs = {}
    for model in models_to_refit(settings, chosen):
        mlflow_run = tracker.start(f"{model}-full", pipeline_run, tracked_params(settings, model), {"model": model, "fit": "full"})
        fitted, seconds = fit_model(settings, model, "full")
        fitted.save(layout.model_dir(model, "full"))
        tracker.log_metrics(mlflow_run, {"fit_seconds_full": seconds})
        tracker.log_artifacts(mlflow_run, layout.model_dir(model, "full"), "model")
        tracker.finish(mlflow_run)
        fitted_runs[model] = mlflow_run
    result = {"chosen": chosen, "mlflow_run_ids": fitted_runs}
    write_json(layout.refit / "refit.json", result)
    return result
