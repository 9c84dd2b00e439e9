"""Temporal train / valid / test split of the validated events."""

from __future__ import annotations

from recmill.config import Settings
from recmill.data.split import temporal_split
from recmill.io import Layout, read_frame, write_frame


def run(settings: Settings) -> dict:
    layout = Layout(settings)
    parts = temporal_split(read_frame(layout.canonical / "events.parquet"), settings.split)
    for name, frame in parts.items():
        write_frame(layout.splits / f"{name}.parquet", frame)
    return {name: len(frame) for name, frame in parts.items()}
