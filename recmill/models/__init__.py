"""Model registry: name -> class. Config sections under ``models:`` carry the same names."""

from __future__ import annotations

from recmill.models.als import ALSRecommender
from recmill.models.base import Recommender
from recmill.models.category import CategoryRecommender
from recmill.models.content import ContentRecommender
from recmill.models.ease import EASERecommender
from recmill.models.item2vec import Item2VecRecommender
from recmill.models.mf import MFRecommender
from recmill.models.ncf import NCFRecommender
from recmill.models.popularity import PopularityRecommender
from recmill.models.random import RandomRecommender
from recmill.models.reorder import ReorderRecommender
from recmill.models.segments import SegmentsRecommender
from recmill.models.two_stage import TwoStageRecommender

REGISTRY: dict[str, type[Recommender]] = {
    cls.name: cls
    for cls in (
        PopularityRecommender, RandomRecommender, CategoryRecommender, ALSRecommender, EASERecommender, ContentRecommender,
        Item2VecRecommender, MFRecommender, SegmentsRecommender, TwoStageRecommender, ReorderRecommender, NCFRecommender,
    )
}
MODEL_NAMES = tuple(REGISTRY)


def build_model(name: str, settings) -> Recommender:
    """A fresh model of this name with its config section from the settings."""
    return REGISTRY[name].from_settings(settings)
