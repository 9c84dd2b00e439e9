"""The honest baseline: the items most users have (bought, rated), the same list for everyone.

Its state is the base class's popularity_ (users who have each item, optionally in a recent window)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recmill.config import PopularityConfig
from recmill.data.interactions import InteractionData, index_of
from recmill.models.base import Recommender


class PopularityRecommender(Recommender):
    name = "popularity"
    Config = PopularityConfig

    def _fit(self, data: InteractionData) -> None:
        events = data.events[data.events["event_type"].isin(data.positive_event_types)]
        if self.config.window_days is not None:
            start = events["timestamp"].max() - pd.Timedelta(days=self.config.window_days)
            events = events[events["timestamp"] >= start]
        rows, cols = index_of(self.user_ids_, events["user_id"]), index_of(self.item_ids_, events["item_id"])
        pairs = np.unique(rows.astype(np.int64) * len(self.item_ids_) + cols)  # each user counts once per item
        self.popularity_ = np.bincount(pairs % len(self.item_ids_), minlength=len(self.item_ids_)).astype(np.float64)

    def _score(self, rows: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.popularity_, (len(rows), len(self.popularity_))).copy()
