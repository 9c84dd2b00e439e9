"""The model catalogue: every model recmill has, by name. Each lives in
recmill/models/<name>.py and is imported when first asked for, so that reading the
settings or starting the command line loads no model library. Config sections under
``models:`` carry the same names."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from recmill.models.base import Recommender

MODEL_NAMES = ("als", "category", "content", "ease", "item2vec", "mf", "ncf", "popularity", "random", "reorder", "segments", "two_stage")
CATALOGUE: dict[str, type[Recommender]] = {}  # name -> class, each added by its class as its module is imported


def model_class(name: str) -> type[Recommender]:
    """The class of the model of this name (a KeyError for a name not in MODEL_NAMES)."""
    if name not in MODEL_NAMES:
        raise KeyError(f"no model named {name!r}; known: {', '.join(MODEL_NAMES)}")
    importlib.import_module(f"{__name__}.{name}")
    return CATALOGUE[name]


def build_model(name: str, settings) -> Recommender:
    """A fresh model of this name with its config section from the settings."""
    return model_class(name).from_settings(settings)


def load_saved(path: Path | str) -> Recommender:
    """The model saved in this folder, whatever its kind."""
    return model_class(json.loads((Path(path) / "config.json").read_text())["model"]).load(path)
