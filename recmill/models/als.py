"""Implicit-feedback ALS (Hu, Koren, Volinsky 2008) through the `implicit` library."""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from recmill.config import ALSConfig
from recmill.data.interactions import InteractionData
from recmill.models.base import Recommender, dot_scores, top_k, unit_rows
from recmill.runtime import model_threads


def confidence(matrix, kind: str):
    """Weighted interactions -> confidence before implicit's alpha: w, or log(1 + w)."""
    out = matrix.copy().astype(np.float32)
    if kind == "log":
        out.data = np.log1p(out.data)
    return out


class ALSRecommender(Recommender):
    name = "als"
    Config = ALSConfig
    state = ("user_factors_", "item_factors_")
    has_similar_items = True
    folds_in = True

    def _fit(self, data: InteractionData) -> None:
        from implicit.cpu.als import AlternatingLeastSquares

        # implicit parallelises itself; a multi-threaded BLAS underneath only contends
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=self.config.factors,
                regularization=self.config.regularization,
                alpha=self.config.alpha,
                iterations=self.config.iterations,
                random_state=self.seed,
                num_threads=model_threads(),  # each user's and each item's solve is its own: any count gives the same factors
                calculate_training_loss=False,
            )
            model.fit(confidence(data.matrix, self.config.confidence), show_progress=False)
        self.user_factors_ = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float32)

    def _user_state(self, data: InteractionData) -> dict[str, object]:
        """Each user's factors solved against the frozen item factors (ALS's user step)."""
        from implicit.cpu.als import AlternatingLeastSquares

        c = self.config
        with threadpool_limits(1, "blas"):
            solver = AlternatingLeastSquares(
                factors=self.item_factors_.shape[1], regularization=c.regularization, alpha=c.alpha, num_threads=model_threads()
            )
            solver.item_factors = self.item_factors_
            factors = solver.recalculate_user(np.arange(data.n_users), confidence(data.matrix, c.confidence).tocsr())
        return {"user_factors_": np.asarray(factors, dtype=np.float32).reshape(data.n_users, -1)}

    def _score(self, rows: np.ndarray) -> np.ndarray:
        return dot_scores(self.user_factors_[rows], self.item_factors_)

    def _unit_items(self) -> np.ndarray:
        """Item factors scaled to length 1, computed once per factor matrix (reasons ask per user)."""
        if getattr(self, "_unit_of", None) is not self.item_factors_:
            self._unit, self._unit_of = unit_rows(self.item_factors_), self.item_factors_
        return self._unit

    def _similar(self, items: np.ndarray, k: int):
        unit = self._unit_items()
        sims = dot_scores(unit[items], unit).astype(np.float64)
        sims[np.arange(len(items)), items] = -np.inf
        return top_k(sims, k)

    def _reasons(self, row: int, items: np.ndarray) -> list[str]:
        """Name the user's history items closest (cosine of item factors) to each recommendation."""
        history = self.history(row)
        if len(history) == 0:
            return super()._reasons(row, items)
        unit = self._unit_items()
        return self._nearest_history_reasons(row, items, history, unit[items] @ unit[history].T)
