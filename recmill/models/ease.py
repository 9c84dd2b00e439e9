"""EASE (Steck 2019): a closed-form linear item-item model, a strong simple peer.

B = I - P / diag(P) with P = (X'X + lambda I)^-1 and a zero diagonal; scores = X B.
Its Gram matrix is items x items, so above models.ease.max_items it is skipped.
"""

from __future__ import annotations

import numpy as np

from recmill.config import EASEConfig
from recmill.data.interactions import InteractionData
from recmill.errors import ModelSkipped
from recmill.models.base import Recommender


class EASERecommender(Recommender):
    name = "ease"
    Config = EASEConfig
    state = ("weights_", "history_")
    folds_in = True

    def _fit(self, data: InteractionData) -> None:
        n = data.n_items
        if n > self.config.max_items:
            gib = 3 * n * n * 8 / 2**30  # Gram, its inverse and B, in float64
            raise ModelSkipped(
                f"ease skipped: the catalogue has {n:,} items, above models.ease.max_items="
                f"{self.config.max_items:,} (its items x items matrices would take about {gib:.2g} GiB)"
            )
        x = (data.matrix > 0).astype(np.float64)
        gram = (x.T @ x).toarray()
        gram[np.diag_indices(n)] += self.config.regularization
        p = np.linalg.inv(gram)
        b = p / -np.diag(p)
        b[np.diag_indices(n)] = 0.0
        self.weights_ = b.astype(np.float32)
        self.history_ = self._user_state(data)["history_"]

    def _user_state(self, data: InteractionData) -> dict[str, object]:
        return {"history_": (data.matrix > 0).astype(np.float32).tocsr()}

    def _score(self, rows: np.ndarray) -> np.ndarray:
        return (self.history_[rows] @ self.weights_)

    def _reasons(self, row: int, items: np.ndarray) -> list[str]:
        """Name the history items with the largest weights towards each recommendation."""
        history = self.history(row)
        if len(history) == 0:
            return super()._reasons(row, items)
        return self._nearest_history_reasons(row, items, history, self.weights_[np.ix_(history, items)].T)
