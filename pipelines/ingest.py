"""Load the configured source into the canonical tables and open a pipeline run, or carry
on the last one: a run with the same data and settings that never published is resumed
(its run id kept, so the flow reuses the stages it finished)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from recmill import warehouse
from recmill.config import Settings
from recmill.data.sources import load_source
from recmill.data.sources.files import load_increments
from recmill.data.tables import Origin
from recmill.data.validation import write_load_failure
from recmill.errors import DataLoadError
from recmill.io import Layout, read_json, write_json, write_tables
from recmill.tracking import Tracker


def new_run_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def run(settings: Settings) -> dict:
    layout = Layout(settings)
    started = datetime.now(UTC).replace(tzinfo=None)
    try:
        tables = load_source(settings.data.source, settings.data.path, preset=settings.data.preset, seed=settings.seed)
        increments = load_increments(Path(settings.refresh.increments))
    except DataLoadError as exc:  # reported where a validation failure is, in place of an older run's report
        report = write_load_failure(exc, layout.validation)
        raise DataLoadError(exc.path, f"{exc.message}\nFull result: {report}", exc.column, exc.rows) from None
    if len(increments):  # events that came between retrains (see pipelines.refresh) are learned from with the source's
        tables.events = pd.concat([tables.events, increments], ignore_index=True)
        source = tables.origins.get("events")
        tables.origins["events"] = Origin(f"{source.path if source else settings.data.source} and {settings.refresh.increments}")
    info = {
        "run_id": new_run_id(started),
        "started_at": started.isoformat(),
        "data_fingerprint": tables.fingerprint(),
        "params_json": settings.to_json(),
        "rows": {name: len(getattr(tables, name)) for name in ("events", "items", "users")},
    }
    last = read_json(layout.run_info) if layout.run_info.exists() else None
    if last and unfinished_run(last, info, settings):
        info.update(run_id=last["run_id"], started_at=last["started_at"], resumed=True)
    write_tables(layout.canonical, tables)
    layout.refreshed_events.unlink(missing_ok=True)  # what refreshes folded in is in the canonical events now
    info["mlflow_run_id"] = Tracker(settings.tracking).open_pipeline(info["run_id"], info["params_json"])
    write_json(layout.run_info, info)
    return info


def unfinished_run(last: dict, now: dict, settings: Settings) -> bool:
    """Whether the last run had this data and these settings and never got to publish."""
    same = last["data_fingerprint"] == now["data_fingerprint"] and last["params_json"] == now["params_json"]
    return same and not warehouse.has_run(settings.publish.warehouse, last["run_id"])
