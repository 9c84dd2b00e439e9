"""The evaluate stage: one model's two fits scored on the held-out slices (recmill.scoring),
written as the metrics files `dvc metrics` reads and logged to the model's MLflow run."""

from __future__ import annotations

from recmill.config import Settings
from recmill.fits import keep_fit_data
from recmill.io import Layout, read_json, write_json
from recmill.scoring import FITS, score_fit, was_scored
from recmill.tracking import Tracker


def read_by_all(settings: Settings) -> list[str]:
    """The trained models every evaluation reads: the segments (slices) and the baseline."""
    return [m for m in settings.train.models if m in ("segments", settings.evaluate.baseline)]


def reads(settings: Settings, model: str) -> list[str]:
    """The trained models this model's evaluation reads: itself and those every evaluation reads."""
    return [m for m in settings.train.models if m == model or m in read_by_all(settings)]


def curve(figures: dict[str, float]) -> list[dict]:
    """{'ndcg@10': v, ...} -> [{'k': 10, 'ndcg': v, ...}, ...] by k; figures without a k left out."""
    by_k: dict[int, dict] = {}
    for key, value in figures.items():
        metric, _, k = key.partition("@")
        if k:
            by_k.setdefault(int(k), {"k": int(k)})[metric] = value
    return [by_k[k] for k in sorted(by_k)]


def run(settings: Settings, model: str) -> dict:
    keep_fit_data()  # scoring reads the saved fits and the split files
    layout = Layout(settings)
    tracking = read_json(layout.tracking_file(model))
    result = {"model": model, "mlflow_run_id": tracking["mlflow_run_id"]}
    if not was_scored(tracking):  # skipped, or failed to train
        result.update({key: tracking[key] for key in ("skipped", "failed") if key in tracking})
        write_json(layout.metrics_file(model), result)
        return result
    result["users_scored"], result["slices"] = {}, {}
    for fit in FITS:  # nested split -> "metric@k" -> value, the shape `dvc metrics` reads
        scored = score_fit(settings, model, fit)
        result[fit], result["users_scored"][fit] = scored["overall"], scored["users"]
        result["slices"][fit] = scored["slices"]
    # the selection metric of each test user: the promotion gate's paired test reads it
    write_json(layout.per_user_file(model), scored["per_user"])
    write_json(layout.curve_file(model), curve(result["test"]))
    Tracker(settings.tracking).log_metrics(
        tracking["mlflow_run_id"],
        {f"{fit}_{name.replace('@', '_at_')}": value for fit in FITS for name, value in result[fit].items()},
    )
    write_json(layout.metrics_file(model), result)
    return result
