"""Temporal train / valid / test split of the validated events, in DuckDB (out of core)."""

from __future__ import annotations

from recmill.config import Settings
from recmill.data.split import split_file
from recmill.io import Layout
from recmill.sql import connect


def run(settings: Settings) -> dict:
    layout = Layout(settings)
    con = connect(settings.duckdb.memory_limit, settings.duckdb.threads, layout.spill)
    try:
        return split_file(layout.canonical / "events.parquet", layout.splits, settings.split, con)
    finally:
        con.close()
