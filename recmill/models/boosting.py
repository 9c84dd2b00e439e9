"""LightGBM settings shared by the models built on gradient-boosted trees."""

from __future__ import annotations

import logging

import numpy as np

from recmill.config import GradientBoostingConfig
from recmill.runtime import model_threads

log = logging.getLogger("recmill")


def booster_params(cfg: GradientBoostingConfig, seed: int) -> dict:
    """Estimator arguments: deterministic row-wise histograms, so the same seed gives the same
    trees whatever the thread count (the process's model_threads)."""
    return {
        "num_leaves": cfg.num_leaves, "learning_rate": cfg.learning_rate, "n_estimators": cfg.n_estimators,
        "min_child_samples": cfg.min_child_samples, "random_state": seed, "n_jobs": model_threads(),
        "deterministic": True, "force_row_wise": True, "verbose": -1,
    }


def early_stopping(cfg: GradientBoostingConfig, X, y: np.ndarray, groups=None, owner: str = "model") -> dict:
    """fit() arguments that stop on a held-out part, when it holds a positive."""
    import lightgbm

    if not np.asarray(y).any():
        log.warning("%s: no held-out label positive; training without early stopping", owner)
        return {}
    args = {"eval_X": (X,), "eval_y": (y,), "callbacks": [lightgbm.early_stopping(cfg.early_stopping_rounds, verbose=False)]}
    if groups is not None:
        args.update(eval_group=[groups], eval_at=[10], eval_metric="ndcg")
    return args
