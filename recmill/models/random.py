"""Uniformly random items: the floor every model must clear."""

from __future__ import annotations

import numpy as np

from recmill.config import RandomConfig
from recmill.data.interactions import InteractionData
from recmill.models.base import Recommender


class RandomRecommender(Recommender):
    folds_in = True  # nothing per user but what they have
    name = "random"
    Config = RandomConfig

    def _fit(self, data: InteractionData) -> None:
        """Nothing to learn: scores are drawn per user from the seed."""

    def _score(self, rows: np.ndarray) -> np.ndarray:
        # one generator per (seed, user row): a user's list does not depend on the batch
        return np.stack([np.random.default_rng([self.seed, int(r)]).random(len(self.item_ids_)) for r in rows])

    def _reasons(self, row: int, items: np.ndarray) -> list[str]:
        return ["picked at random, to explore the catalogue"] * len(items)
