"""Scoring a fitted model on held-out interactions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np
import pandas as pd

from recmill import schema as S
from recmill.evaluation.metrics import evaluate


class Ranker(Protocol):
    """What scoring needs of a model (recmill.models.base.Recommender has it): its
    catalogue and its top-k lists."""

    item_ids_: np.ndarray

    def recommend(self, users: list, k: int, exclude_seen: bool = True) -> pd.DataFrame: ...


def ranked_lists(model: Ranker, users, k: int, exclude_seen: bool = True) -> dict[str, list[str]]:
    """user -> the model's top-k item ids, best first."""
    recs = model.recommend(list(users), k=k, exclude_seen=exclude_seen)
    return recs.groupby(S.USER_ID, sort=False)[S.ITEM_ID].agg(list).to_dict()


def score_model(model: Ranker, truth: dict[str, set], metrics: Sequence[str], ks: Sequence[int], exclude_seen: bool = True) -> list[dict]:
    """Metric rows ({metric, k, value}) of the model's top max(ks) lists for the users in truth."""
    ranked = ranked_lists(model, truth, max(ks), exclude_seen)
    return evaluate(truth, ranked, metrics, ks, len(model.item_ids_))


def sample_users(users: Iterable[str], max_users: int | None, seed: int) -> list[str]:
    """The users, sorted: all of them up to max_users, else that many drawn with the seed (the
    same users for every model scored on the same slice)."""
    users = sorted(set(users))
    if max_users is None or len(users) <= max_users:
        return users
    return sorted(np.random.default_rng(seed).choice(np.array(users, dtype=object), size=max_users, replace=False))
