"""Scoring a fitted model on held-out interactions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from recmill.evaluation.metrics import evaluate
from recmill.models.base import Recommender


def ranked_lists(model: Recommender, users, k: int, exclude_seen: bool = True) -> dict[str, list[str]]:
    """user -> the model's top-k item ids, best first."""
    recs = model.recommend(list(users), k=k, exclude_seen=exclude_seen)
    return recs.groupby("user_id", sort=False)["item_id"].agg(list).to_dict()


def score_model(model: Recommender, truth: dict[str, set], metrics: Sequence[str], ks: Sequence[int], exclude_seen: bool = True) -> list[dict]:
    """Metric rows ({metric, k, value}) of the model's top max(ks) lists for the users in truth."""
    ranked = ranked_lists(model, truth, max(ks), exclude_seen)
    return evaluate(truth, ranked, metrics, ks, len(model.item_ids_))


def sample_users(truth: Mapping[str, set], max_users: int | None, seed: int) -> Mapping[str, set]:
    """At most max_users of the users in truth, drawn with the seed (the same users for every
    model scored on the same slice); all of them when there are no more than that."""
    if max_users is None or len(truth) <= max_users:
        return truth
    kept = np.random.default_rng(seed).choice(np.array(sorted(truth), dtype=object), size=max_users, replace=False)
    return {user: truth[user] for user in sorted(kept)}
