"""Has the data moved since the champion was trained? (evidently, recmill.drift)

Each run profiles its data: the positive events (what was bought or rated: category,
department, price, value, hour of day, weekday) and the user and item feature tables of
recmill.features, each sampled to drift.sample rows. The profile is kept in MLflow (a run
named 'data-profile'), so a later run can compare itself with the run that trained the
champion. The comparison's evidently reports go to reports/drift/, its rows to
reports/drift/summary.json (for the drift_checks table), and severe drift blocks the
automatic promotion of a challenger (pipelines/select.py reads the summary).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import pandas as pd

from recmill.config import Settings
from recmill.drift import data_drift
from recmill.features import build_features
from recmill.io import Layout, run_info, write_json
from recmill.registry import CHAMPION, Registry
from recmill.sql import connect, identifier, literal
from recmill.tracking import Tracker

log = logging.getLogger("recmill")
PROFILE_RUN = "data-profile"
PROFILES = ("events", "user_features", "item_features")


def event_profile(con, events: Path, items: Path, positive: list[str], sample: int, seed: int) -> pd.DataFrame:
    """A sample of ``sample`` positive events, each with what describes it: hour of day,
    weekday, value and the item's category, department and price where the items have
    them. The sample is the same on a rerun (rows ordered by a hash of their position)."""
    have = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM read_parquet({literal(items)})").fetchall()}
    attributes = [c for c in ("category", "department", "price") if c in have]
    chosen = ", ".join("?" for _ in positive)
    frame = con.execute(f"""
        WITH chosen AS (
            SELECT file_row_number AS pos, item_id, "timestamp", value
            FROM read_parquet({literal(events)}, file_row_number = true)
            WHERE event_type IN ({chosen})
            ORDER BY hash(file_row_number + ?), file_row_number LIMIT ?
        ), catalogue AS (SELECT DISTINCT ON (item_id) * FROM read_parquet({literal(items)}))
        SELECT hour("timestamp") AS hour_of_day, dayname("timestamp") AS weekday, CAST(value AS DOUBLE) AS value
               {"".join(f", c.{identifier(a)}" for a in attributes)}
        FROM chosen e LEFT JOIN catalogue c USING (item_id) ORDER BY pos""", [*positive, seed, sample]).df()
    if "price" in frame:
        frame["price"] = frame["price"].astype(float)
    return frame


def profile(settings: Settings, out_dir: Path) -> dict[str, Path]:
    """This run's profile as parquet files in out_dir, by name."""
    layout = Layout(settings)
    positive = settings.interactions.positive_event_types
    events, items = layout.canonical / "events.parquet", layout.canonical / "items.parquet"
    out_dir.mkdir(parents=True, exist_ok=True)
    con = connect(settings.duckdb.memory_limit, settings.duckdb.threads, layout.spill)
    try:
        frames = {"events": event_profile(con, events, items, positive, settings.drift.sample, settings.seed)}
    finally:
        con.close()
    with tempfile.TemporaryDirectory(prefix="recmill-profile-") as work:
        paths = build_features(
            events, items, Path(work), positive_event_types=positive,
            memory_limit=settings.duckdb.memory_limit, threads=settings.duckdb.threads, tables=PROFILES[1:], stats=False,
        )
        for name in ("user_features", "item_features"):
            frames[name] = pd.read_parquet(paths[name])
    written = {}
    for name, frame in frames.items():
        sample = frame.sample(n=settings.drift.sample, random_state=settings.seed) if len(frame) > settings.drift.sample else frame
        written[name] = out_dir / f"{name}.parquet"
        sample.to_parquet(written[name], index=False)
    return written


def reference_profile(settings: Settings, pipeline_run: str, into: Path) -> dict[str, pd.DataFrame] | None:
    """The profile a pipeline run kept in MLflow, or None."""
    tracker = Tracker(settings.tracking)
    runs = [r for r in tracker.runs(pipeline_run) if r.info.run_name == PROFILE_RUN]
    if not runs:
        return None
    folder = Path(tracker.client.download_artifacts(runs[0].info.run_id, "profile", str(into)))
    return {name: pd.read_parquet(folder / f"{name}.parquet") for name in PROFILES if (folder / f"{name}.parquet").exists()}


def run(settings: Settings) -> dict:
    layout = Layout(settings)
    info = run_info(settings)
    tracker = Tracker(settings.tracking)
    mlflow_run = tracker.start(PROFILE_RUN, info["run_id"], {"drift": settings.drift.model_dump(mode="json")})
    with tempfile.TemporaryDirectory(prefix="recmill-drift-") as work:
        work = Path(work)
        current = profile(settings, work / "profile")
        tracker.log_artifacts(mlflow_run, work / "profile", "profile")
        tracker.finish(mlflow_run)
        champion = Registry(settings.tracking).alias(CHAMPION)
        reference = reference_profile(settings, champion.pipeline_run, work / "reference") if champion else None
        results = []
        if reference:
            for name in PROFILES:
                if name in reference:
                    results.append(data_drift(reference[name], pd.read_parquet(current[name]), settings.drift, name, layout.drift, settings.seed))
    drifted = [r for r in results if r.drifted]
    if not reference:
        summary = "no reference yet: no champion, or its run kept no data profile"
    else:
        summary = "; ".join(r.summary for r in drifted) or "no data set drifted"
    result = {
        "run_id": info["run_id"],
        "reference_run": champion.pipeline_run if reference else None,
        "severe": any(r.severe for r in results),
        "drifted": bool(drifted),
        "summary": summary,
        "rows": pd.concat([r.rows for r in results], ignore_index=True).to_dict("records") if results else [],
    }
    log.info("drift: %s", summary)
    write_json(layout.drift / "summary.json", result)
    return result
