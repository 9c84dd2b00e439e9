"""Stop the run, with a readable report, before bad data can train or publish anything."""

from __future__ import annotations

from recmill.config import Settings
from recmill.data.validation import check_files
from recmill.io import Layout


def run(settings: Settings) -> dict:
    layout = Layout(settings)
    report = check_files(
        layout.canonical,
        settings.validation,
        layout.validation,
        memory_limit=settings.duckdb.memory_limit,
        threads=settings.duckdb.threads,
        temp_directory=layout.spill,
    )
    return {"success": report.success, "report": str(layout.validation)}
