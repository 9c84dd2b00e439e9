"""Score one model's two fits on the held-out slices: valid (for choosing) and test (reported)."""

from __future__ import annotations

from pipelines.common import fit_events
from recmill.config import Settings
from recmill.data.split import items_by_user, relevant_items
from recmill.evaluation.holdout import score_model
from recmill.io import Layout, read_frame, read_json, write_json
from recmill.models import REGISTRY
from recmill.tracking import Tracker


def score_fit(settings: Settings, model: str, fit: str) -> tuple[list[dict], int]:
    """Metric rows of one fit on the slice after its training data, and the users scored."""
    layout = Layout(settings)
    fitted = REGISTRY[model].load(layout.model_dir(model, fit))
    exclude = settings.publish.exclude_seen
    held_out = read_frame(layout.splits / f"{fit}.parquet")
    positive = settings.interactions.positive_event_types
    had = items_by_user(fit_events(settings, fit), positive) if exclude else None
    truth = relevant_items(held_out, positive, had)
    rows = score_model(fitted, truth, settings.evaluate.metrics, settings.evaluate.k, exclude)
    return [{"split": fit, **row} for row in rows], len(truth)


def run(settings: Settings, model: str) -> dict:
    layout = Layout(settings)
    tracking = read_json(layout.tracking_file(model))
    rows, users = [], {}
    for fit in ("valid", "test"):
        fit_rows, users[fit] = score_fit(settings, model, fit)
        rows += fit_rows
    Tracker(settings.tracking).log_metrics(
        tracking["mlflow_run_id"], {f"{r['split']}_{r['metric']}_at_{r['k']}": r["value"] for r in rows}
    )
    result = {"model": model, "mlflow_run_id": tracking["mlflow_run_id"], "users_scored": users}
    for r in rows:  # nested split -> "metric@k" -> value, the shape `dvc metrics` reads
        result.setdefault(r["split"], {})[f"{r['metric']}@{r['k']}"] = r["value"]
    write_json(layout.metrics_file(model), result)
    return result
