"""DuckDB connections for the relational work on the canonical tables (validation, the
split, features, drift profiles): out of core, under a memory limit, spilling to disk."""

from __future__ import annotations

from pathlib import Path

import duckdb


def connect(memory_limit: str = "4GB", threads: int = 2, spill: Path | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory database that works on files larger than memory_limit by spilling to ``spill``."""
    config = {
        "memory_limit": memory_limit,
        "threads": threads,
        "preserve_insertion_order": False,  # lets large results stream instead of buffering
    }
    if spill is not None:
        Path(spill).mkdir(parents=True, exist_ok=True)
        config["temp_directory"] = str(spill)
    con = duckdb.connect(config=config)
    con.execute("SET enable_progress_bar = false")
    return con


def literal(value: str) -> str:
    """A SQL string literal (for the places DuckDB takes no bound parameter: COPY targets, views)."""
    return "'" + str(value).replace("'", "''") + "'"


def identifier(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + str(name).replace('"', '""') + '"'
