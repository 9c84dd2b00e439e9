"""Ranking metrics for top-k recommendation lists, with binary relevance.

``truth`` maps each user to the held-out items they interacted with; ``recs`` maps
each user to a ranked item list, best first. Every per-user metric is computed from
the ranks (1-based, within the top k) at which relevant items appear, so
``evaluate`` finds those ranks once per user and derives all metrics from them.

A repeated item in a ranked list scores only at its first occurrence; later copies
still take up their slot in the top k, so a list with repeats is not rewarded with
items from beyond rank k.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import cache

Truth = Mapping[str, Collection[str]]
Recs = Mapping[str, Sequence[str]]


# --- shared building blocks -----------------------------------------------------


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")


def _hit_ranks(relevant: set[str] | frozenset[str], ranked: Sequence[str], k: int) -> list[int]:
    """1-based ranks in the top k where a relevant item appears for the first time."""
    hits = []
    seen = set()
    for rank, item in enumerate(ranked[:k], start=1):
        if item in relevant and item not in seen:
            hits.append(rank)
        seen.add(item)
    return hits


@cache
def _ideal_dcg(n: int) -> float:
    return sum(1.0 / math.log2(r + 1) for r in range(1, n + 1))


# Each takes the hit ranks within the top k (ascending), |relevant| and k.
def _precision(hits: list[int], n_rel: int, k: int) -> float:
    return len(hits) / k


def _recall(hits: list[int], n_rel: int, k: int) -> float:
    return len(hits) / n_rel


def _ndcg(hits: list[int], n_rel: int, k: int) -> float:
    dcg = sum(1.0 / math.log2(r + 1) for r in hits)
    return dcg / _ideal_dcg(min(n_rel, k))


def _average_precision(hits: list[int], n_rel: int, k: int) -> float:
    # the i-th hit (1-based) at rank r contributes precision@r = i / r
    return sum(i / r for i, r in enumerate(hits, start=1)) / min(n_rel, k)


def _hit_rate(hits: list[int], n_rel: int, k: int) -> float:
    return 1.0 if hits else 0.0


def _reciprocal_rank(hits: list[int], n_rel: int, k: int) -> float:
    return 1.0 / hits[0] if hits else 0.0


def _score_one(from_hits, relevant: Collection[str], ranked: Sequence[str], k: int) -> float:
    _check_k(k)
    relevant = set(relevant)
    if not relevant:
        raise ValueError("relevant is empty: only users with a held-out item can be scored")
    return from_hits(_hit_ranks(relevant, ranked, k), len(relevant), k)


# --- per-list metrics (one user) ------------------------------------------------


def precision_at_k(relevant: Collection[str], ranked: Sequence[str], k: int) -> float:
    """Hits in the top k / k."""
    return _score_one(_precision, relevant, ranked, k)


def recall_at_k(relevant: Collection[str], ranked: Sequence[str], k: int) -> float:
    """Hits in the top k / |relevant|."""
    return _score_one(_recall, relevant, ranked, k)


def ndcg_at_k(relevant: Collection[str], ranked: Sequence[str], k: int) -> float:
    """DCG of the top k over the DCG of min(|relevant|, k) hits at ranks 1, 2, ..."""
    return _score_one(_ndcg, relevant, ranked, k)


def average_precision_at_k(relevant: Collection[str], ranked: Sequence[str], k: int) -> float:
    """Sum of precision@r over hit ranks r <= k, divided by min(|relevant|, k)."""
    return _score_one(_average_precision, relevant, ranked, k)


def hit_rate_at_k(relevant: Collection[str], ranked: Sequence[str], k: int) -> float:
    """1 if any relevant item is in the top k, else 0."""
    return _score_one(_hit_rate, relevant, ranked, k)


def reciprocal_rank_at_k(relevant: Collection[str], ranked: Sequence[str], k: int) -> float:
    """1 / rank of the first relevant item in the top k, else 0."""
    return _score_one(_reciprocal_rank, relevant, ranked, k)


# --- list-level metric ----------------------------------------------------------


def catalogue_coverage(recs: Recs, k: int, catalogue_size: int) -> float:
    """Distinct items in any user's top k, as a fraction of the catalogue."""
    _check_k(k)
    if catalogue_size < 1:
        raise ValueError(f"catalogue_size must be at least 1, got {catalogue_size}")
    shown: set[str] = set()
    for ranked in recs.values():
        shown.update(ranked[:k])
    return len(shown) / catalogue_size


# --- registry -------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[..., float]  # per_user: fn(relevant, ranked, k); else fn(recs, k, catalogue_size)
    per_user: bool


METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric("precision", precision_at_k, True),
        Metric("recall", recall_at_k, True),
        Metric("ndcg", ndcg_at_k, True),
        Metric("map", average_precision_at_k, True),
        Metric("hit_rate", hit_rate_at_k, True),
        Metric("mrr", reciprocal_rank_at_k, True),
        Metric("coverage", catalogue_coverage, False),
    ]
}

# The fast path used over many users: metric name -> score from hit ranks.
_FROM_HITS = {
    "precision": _precision,
    "recall": _recall,
    "ndcg": _ndcg,
    "map": _average_precision,
    "hit_rate": _hit_rate,
    "mrr": _reciprocal_rank,
}


def _lookup(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; known: {sorted(METRICS)}") from None


def _per_user_lookup(name: str):
    if not _lookup(name).per_user:
        raise ValueError(f"metric {name!r} is computed over all users' lists, not per user")
    return _FROM_HITS[name]


def _user_hits(truth: Truth, recs: Recs, k: int) -> dict[str, tuple[list[int], int]]:
    """user -> (hit ranks within the top k, |relevant|) for users with a relevant item."""
    out = {}
    for user, relevant in truth.items():
        relevant = set(relevant)
        if relevant:
            out[user] = (_hit_ranks(relevant, recs.get(user, ()), k), len(relevant))
    return out


def _scores(from_hits, user_hits: dict[str, tuple[list[int], int]], k: int) -> dict[str, float]:
    # user_hits may have been found at a larger k; hit ranks are ascending, so cut them
    return {
        u: from_hits(hits[: bisect_right(hits, k)], n_rel, k)
        for u, (hits, n_rel) in user_hits.items()
    }


# --- aggregates over users ------------------------------------------------------


def per_user(metric_name: str, truth: Truth, recs: Recs, k: int) -> dict[str, float]:
    """Score of every user in truth with at least one relevant item (0 if absent from recs)."""
    from_hits = _per_user_lookup(metric_name)
    _check_k(k)
    return _scores(from_hits, _user_hits(truth, recs, k), k)


def _mean(scores: dict[str, float]) -> float:
    if not scores:
        raise ValueError("no user in truth has a relevant item, so there is nothing to average")
    return sum(scores.values()) / len(scores)


def mean_over_users(metric_name: str, truth: Truth, recs: Recs, k: int) -> float:
    """Mean of per_user() over the users it scores."""
    return _mean(per_user(metric_name, truth, recs, k))


def evaluate(
    truth: Truth,
    recs: Recs,
    metrics: Sequence[str],
    ks: Sequence[int],
    catalogue_size: int,
) -> list[dict]:
    """Rows {"metric", "k", "value"} for every metric x k, in that order.

    Per-user metrics are means over users in truth with a relevant item; coverage is
    over every list in recs.
    """
    chosen = [_lookup(name) for name in metrics]  # fail on a bad name before any work
    scores = per_user_scores(truth, recs, metrics, ks)
    return [
        {"metric": m.name, "k": k, "value": float(_mean(scores[m.name, k]) if m.per_user else catalogue_coverage(recs, k, catalogue_size))}
        for m in chosen
        for k in ks
    ]


def per_user_scores(truth: Truth, recs: Recs, metrics: Sequence[str], ks: Sequence[int]) -> dict[tuple[str, int], dict[str, float]]:
    """(metric, k) -> per_user() of each per-user metric at each k; every user's hit ranks
    are found once, at the largest k."""
    chosen = [m for m in (_lookup(name) for name in metrics) if m.per_user]
    for k in ks:
        _check_k(k)
    if not chosen or not ks:
        return {}
    user_hits = _user_hits(truth, recs, max(ks))
    return {(m.name, k): _scores(_FROM_HITS[m.name], user_hits, k) for m in chosen for k in ks}


# --- rating prediction ----------------------------------------------------------
# Not ranking metrics: they score predicted against held-out ratings, so they live
# outside the top-k registry above.


def _errors(actual, predicted):
    import numpy as np

    actual, predicted = np.asarray(actual, dtype=float), np.asarray(predicted, dtype=float)
    if actual.shape != predicted.shape or actual.size == 0:
        raise ValueError(f"need equally long, non-empty rating arrays, got {actual.size} and {predicted.size}")
    return actual - predicted


def rmse(actual, predicted) -> float:
    """Root mean squared error of predicted ratings."""
    e = _errors(actual, predicted)
    return float((e @ e / e.size) ** 0.5)


def mae(actual, predicted) -> float:
    """Mean absolute error of predicted ratings."""
    return float(abs(_errors(actual, predicted)).mean())


RATING_METRICS = {"rmse": rmse, "mae": mae}
