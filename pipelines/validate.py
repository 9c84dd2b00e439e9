"""Stop the run, with a readable report, before bad data can train or publish anything."""

from __future__ import annotations

from recmill.config import Settings
from recmill.data.validation import check_tables
from recmill.io import Layout, read_tables


def run(settings: Settings) -> dict:
    layout = Layout(settings)
    report = check_tables(read_tables(layout.canonical), settings.validation, layout.validation)
    return {"success": report.success, "report": str(layout.validation)}
