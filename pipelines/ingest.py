"""Load the configured source into the canonical tables and open a pipeline run."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from recmill.config import Settings
from recmill.data.sources import load_source
from recmill.io import Layout, write_json, write_tables


def new_run_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def run(settings: Settings) -> dict:
    layout = Layout(settings)
    started = datetime.now(UTC).replace(tzinfo=None)
    tables = load_source(settings.data.source, settings.data.path, preset=settings.data.preset, seed=settings.seed)
    write_tables(layout.canonical, tables)
    info = {
        "run_id": new_run_id(started),
        "started_at": started.isoformat(),
        "data_fingerprint": tables.fingerprint(),
        "params_json": settings.to_json(),
        "rows": {name: len(getattr(tables, name)) for name in ("events", "items", "users")},
    }
    write_json(layout.run_info, info)
    return info
