"""Popular items within the user's favourite categories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recmill.config import CategoryConfig
from recmill.data.interactions import InteractionData
from recmill.models.base import Recommender

OUTSIDE = 1e-6  # items outside the favourite categories keep their popularity order, far below


class CategoryRecommender(Recommender):
    name = "category"
    Config = CategoryConfig
    state = ("preference_", "item_category_", "popularity_share_")
    folds_in = True

    def _fit(self, data: InteractionData) -> None:
        categories = pd.Categorical(pd.Series(self.item_categories_).replace("", np.nan))
        codes = categories.codes  # -1: item without a category
        self.item_category_ = codes.astype(np.int32)
        self.preference_ = self._user_state(data)["preference_"]
        self.popularity_share_ = (self.popularity_ / max(1.0, self.popularity_.max())).astype(np.float32)

    def _user_state(self, data: InteractionData) -> dict[str, object]:
        """Each user's share of their items in each of their top categories."""
        has = self.item_category_ >= 0
        n_categories = max(1, int(self.item_category_.max(initial=-1)) + 1)  # every category has an item
        item_category = sp.csr_matrix(
            (np.ones(has.sum()), (np.flatnonzero(has), self.item_category_[has])), shape=(len(self.item_ids_), n_categories)
        )
        counts = (self.seen_ @ item_category).toarray()
        keep = np.argsort(-counts, axis=1, kind="stable")[:, : self.config.top_categories]
        favourite = np.zeros_like(counts)
        np.put_along_axis(favourite, keep, np.take_along_axis(counts, keep, axis=1), axis=1)
        totals = favourite.sum(axis=1, keepdims=True)
        return {"preference_": (favourite / np.where(totals == 0, 1, totals)).astype(np.float32)}

    def _score(self, rows: np.ndarray) -> np.ndarray:
        pref = self.preference_[rows]
        in_category = np.where(self.item_category_ >= 0, pref[:, np.maximum(self.item_category_, 0)], 0.0)
        return in_category * self.popularity_share_ + OUTSIDE * self.popularity_share_

    def _reasons(self, row: int, items: np.ndarray) -> list[str]:
        pref = self.preference_[row]
        return [
            f"popular in {self.item_categories_[i]}, one of your favourite categories"
            if self.item_category_[i] >= 0 and pref[self.item_category_[i]] > 0
            else self._popular_reason(i)
            for i in items
        ]
