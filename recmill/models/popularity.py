"""The honest baseline: the items most users have (bought, rated), the same list for everyone.

Its state is the base class's popularity_ (users who have each item, optionally in a recent window)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recmill import schema as S
from recmill.arrays import unique_ints
from recmill.config import PopularityConfig
from recmill.data.interactions import InteractionData, index_of
from recmill.models.base import Recommender


class PopularityRecommender(Recommender):
    name = "popularity"
    Config = PopularityConfig
    folds_in = True  # nothing per user but what they have

    def _fit(self, data: InteractionData) -> None:
        """Without a window the base class's count stands (users who have each item, from the
        users x items matrix); with one, only the window's positive events count."""
        if self.config.window_days is None:
            return
        events = data.events
        positive = events[S.EVENT_TYPE].isin(data.positive_event_types).to_numpy(bool)
        times = events[S.TIMESTAMP].to_numpy()
        start = times[positive].max() - np.timedelta64(pd.Timedelta(days=self.config.window_days))
        kept = positive & (times >= start)
        rows, cols = index_of(self.user_ids_, events[S.USER_ID][kept]), index_of(self.item_ids_, events[S.ITEM_ID][kept])
        pairs = unique_ints(rows.astype(np.int64) * len(self.item_ids_) + cols)  # each user counts once per item
        self.popularity_ = np.bincount(pairs % len(self.item_ids_), minlength=len(self.item_ids_)).astype(np.float64)

    def _score(self, rows: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.popularity_, (len(rows), len(self.popularity_))).copy()

    def _top(self, rows: np.ndarray, k: int, exclude_seen: bool) -> tuple[np.ndarray, np.ndarray]:
        """The global order with each user's own items skipped: only the first k + (most
        items a user in the batch has) places of it are looked at, never every item."""
        k = min(k, len(self.item_ids_))
        if not exclude_seen:
            top = np.tile(self.popular_[:k], (len(rows), 1))
            return top, self.popularity_[top]
        seen = self.seen_[rows]
        head = min(len(self.popular_), k + int(np.diff(seen.indptr).max(initial=0)))
        place = np.full(len(self.item_ids_), head, dtype=np.int64)  # an item's place in the order, head if beyond
        place[self.popular_[:head]] = np.arange(head)
        taken = np.zeros((len(rows), head + 1), dtype=bool)
        taken[np.repeat(np.arange(len(rows)), np.diff(seen.indptr)), place[seen.indices]] = True
        places = np.argsort(taken[:, :head], axis=1, kind="stable")[:, :k]  # free places first, in order
        top = self.popular_[places]
        scores = self.popularity_[top]
        # a user who has all but fewer than k of the head's items: -inf pads, as in the dense path
        scores[np.take_along_axis(taken[:, :head], places, axis=1)] = -np.inf
        return top, scores
