"""Scoring a fitted model on held-out interactions."""

from __future__ import annotations

from collections.abc import Sequence

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
