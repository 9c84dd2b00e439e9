"""Scoring a fitted model on held-out interactions."""

from __future__ import annotations

from collections.abc import Sequence

from recmill.evaluation.metrics import evaluate
from recmill.models.base import Recommender


def score_model(model: Recommender, truth: dict[str, set], metrics: Sequence[str], ks: Sequence[int], exclude_seen: bool = True) -> list[dict]:
    """Metric rows ({metric, k, value}) of the model's top max(ks) lists for the users in truth."""
    recs = model.recommend(list(truth), k=max(ks), exclude_seen=exclude_seen)
    ranked = recs.groupby("user_id", sort=False)["item_id"].agg(list).to_dict()
    return evaluate(truth, ranked, metrics, ks, len(model.item_ids_))
