"""Where every benchmark's figures go (a JSON file and a markdown page beside it), and the
settings that keep a benchmark run's files in one folder."""

from __future__ import annotations

import json
from pathlib import Path


def write_report(json_path: Path, report: dict, markdown: str) -> None:
    """Write the figures to json_path and the markdown to the same name with .md."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    json_path.with_suffix(".md").write_text(markdown)
    print(f"written to {json_path} and {json_path.with_suffix('.md')}")


def folder_settings(folder: Path) -> list[str]:
    """`--set` overrides that put a run's data, reports, tracking and warehouse under folder."""
    return [
        f"paths.data={folder / 'data'}", f"paths.reports={folder / 'reports'}", f"tracking.uri=sqlite:///{folder / 'mlflow.db'}",
        f"tracking.artifacts={folder / 'artifacts'}", f"publish.warehouse={folder / 'warehouse.duckdb'}",
    ]
