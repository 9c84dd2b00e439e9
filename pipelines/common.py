"""What several stages read: the run's identity and the training data for a fit."""

from __future__ import annotations

import time

import pandas as pd

from recmill.config import Settings
from recmill.data.interactions import InteractionData
from recmill.io import Layout, read_frame, read_json
from recmill.models import build_model
from recmill.models.base import Recommender

# which split events each fit trains on
FIT_SPLITS = {"valid": ("train",), "test": ("train", "valid"), "full": ("train", "valid", "test")}


def run_info(settings: Settings) -> dict:
    return read_json(Layout(settings).run_info)


def fit_events(settings: Settings, fit: str) -> pd.DataFrame:
    layout = Layout(settings)
    return pd.concat([read_frame(layout.splits / f"{s}.parquet") for s in FIT_SPLITS[fit]], ignore_index=True)


def fit_model(settings: Settings, model: str, fit: str) -> tuple[Recommender, float]:
    """Train one model on the events of one fit; returns it and the seconds it took."""
    layout = Layout(settings)
    data = InteractionData.build(
        fit_events(settings, fit),
        read_frame(layout.canonical / "items.parquet"),
        read_frame(layout.canonical / "users.parquet"),
        settings.interactions,
    )
    started = time.perf_counter()
    fitted = build_model(model, settings).fit(data)
    return fitted, time.perf_counter() - started


def tracked_params(settings: Settings, model: str) -> dict:
    return {
        "model": model,
        "config": getattr(settings.models, model).model_dump(mode="json"),
        "seed": settings.seed,
        "interactions": settings.interactions.model_dump(mode="json"),
        "split": settings.split.model_dump(mode="json"),
        "data": settings.data.model_dump(mode="json"),
    }
