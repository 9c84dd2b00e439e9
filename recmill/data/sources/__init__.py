"""Source loaders: each returns the canonical tables (see recmill.data.tables)."""

from __future__ import annotations

from pathlib import Path

from recmill.data.sources.files import load_files
from recmill.data.sources.instacart import load_instacart
from recmill.data.sources.movielens import load_movielens
from recmill.data.sources.synthetic import generate
from recmill.data.tables import Tables

FILE_LOADERS = {"instacart": load_instacart, "movielens": load_movielens, "files": load_files}


def load_source(source: str, path: Path | None, *, preset: str = "small", seed: int = 42) -> Tables:
    """The canonical tables of a source; ``path`` is the directory of a file-based source."""
    if source == "synthetic":
        return generate(preset, seed)
    if source not in FILE_LOADERS:
        raise ValueError(f"unknown data source '{source}'; known sources: synthetic, {', '.join(FILE_LOADERS)}")
    if path is None:
        raise ValueError(f"data source '{source}' reads files: give the directory that holds them")
    return FILE_LOADERS[source](Path(path))
