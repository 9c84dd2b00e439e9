"""Score every user with the chosen model and publish all tables to DuckDB in one switch."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from pipelines.common import run_info
from pipelines.evaluate import FITS
from recmill import warehouse
from recmill.config import Settings
from recmill.io import Layout, read_frame, read_json, write_json
from recmill.models import REGISTRY


def all_users(layout: Layout) -> list[str]:
    """Everyone in the data: users with events and users listed in the users table."""
    events = read_frame(layout.canonical / "events.parquet")["user_id"]
    users = read_frame(layout.canonical / "users.parquet")["user_id"]
    return sorted(set(events.dropna().astype(str)) | set(users.dropna().astype(str)))


def metric_rows(settings: Settings, run_id: str) -> pd.DataFrame:
    """Every evaluated model's figures as model_metrics rows: overall (slice 'all') and per segment."""
    layout = Layout(settings)
    rows = []
    for model in settings.train.models:
        scored = read_json(layout.metrics_file(model))
        if "skipped" in scored:
            continue
        slices = [(split, "all", scored[split]) for split in FITS]
        slices += [(split, f"segment={label}", values) for split, by in scored["segments"].items() for label, values in by.items()]
        for split, slice_, values in slices:
            for key, value in values.items():
                metric, _, k = key.partition("@")
                rows.append(
                    {"run_id": run_id, "model": model, "model_version": scored["mlflow_run_id"], "split": split,
                     "metric": metric, "k": int(k) if k else None, "value": value, "slice": slice_}
                )
    return pd.DataFrame(rows).astype({"k": "Int32"})


def build_frames(settings: Settings, generated_at: datetime) -> dict[str, pd.DataFrame]:
    layout = Layout(settings)
    info = run_info(settings)
    refit = read_json(layout.refit / "refit.json")
    chosen = refit["chosen"]
    models = {m: REGISTRY[m].load(layout.model_dir(m, "full")) for m in refit["mlflow_run_ids"]}

    recs = models[chosen].recommend(all_users(layout), k=settings.publish.k, exclude_seen=settings.publish.exclude_seen, reasons=True)
    recs = recs.assign(model=chosen, model_version=refit["mlflow_run_ids"][chosen], run_id=info["run_id"], generated_at=generated_at)

    similar = [
        m.similar_items(k=settings.publish.similar_k).assign(model=name, run_id=info["run_id"])
        for name, m in models.items()
        if m.has_similar_items
    ]
    extra = {}
    for name, m in models.items():
        for table, frame in m.tables().items():
            extra[table] = frame.assign(run_id=info["run_id"])
    runs = pd.DataFrame(
        [
            {
                "run_id": info["run_id"],
                "started_at": pd.Timestamp(info["started_at"]),
                "finished_at": generated_at,
                "status": "success",
                "data_fingerprint": info["data_fingerprint"],
                "params_json": info["params_json"],
            }
        ]
    )
    empty_similar = pd.DataFrame(columns=["item_id", "similar_item_id", "rank", "score", "model", "run_id"])
    return {
        "recommendations": recs,
        "similar_items": pd.concat(similar, ignore_index=True) if similar else empty_similar,
        "model_metrics": metric_rows(settings, info["run_id"]),
        "runs": runs,
        **extra,
    }


def run(settings: Settings) -> dict:
    layout = Layout(settings)
    generated_at = datetime.now(UTC).replace(tzinfo=None)
    counts = warehouse.publish(settings.publish.warehouse, build_frames(settings, generated_at))
    result = {
        "run_id": run_info(settings)["run_id"],
        "warehouse": str(settings.publish.warehouse),
        "chosen": read_json(layout.selection)["chosen"],
        "row_counts": counts,
    }
    write_json(layout.publish_report, result)
    return result
