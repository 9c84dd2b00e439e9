"""Beyond-accuracy metrics, fairness gaps, evaluation slices and the baseline comparison.

Inputs are those of recmill.evaluation.metrics: ``ranked`` maps a user to recommended
item ids, best first; ``truth`` maps a user to held-out relevant items; ``k`` is the
cut-off. A user's *top k* is the distinct items among the first k entries of their list
(a repeated item counts once and still takes up its slot, as in metrics.py). A user's
*relevant items* are truth[user]; users in truth with none are left out, as in
metrics.py. ``popularity`` maps an item to the number of training users who have it.

An aggregate with nothing to average (no eligible user, no group pair) is NaN, so a model
with unusual lists still gets its other figures; compare_to_baseline turns NaN into None.

Metrics (means over users give every user the same weight):

- diversity@k (intra-list diversity): each item is a vector of its attributes (item_vectors:
  one-hot category, aisle, department, brand, L2-normalised). For a user whose top k holds
  m >= 2 items with a non-zero vector (unknown items and items without attributes are
  skipped), ILD(u) = mean over the m(m-1)/2 pairs of (1 - cos(x_i, x_j)). diversity is the
  mean of ILD(u) over those users.
- novelty@k: self-information of an item, -log2 p(i), p(i) = popularity(i) / n_users, an
  item nobody has counting as popularity 1 (finite). novelty is the mean over users with a
  non-empty top k of the mean self-information of their top-k items.
- serendipity@k: for each user with relevant items, |relevant items in the top k that are
  not in the baseline's top k for that user| / k; serendipity is the mean over those users.
- personalisation@k: 1 - mean over pairs of users (u, v) of |top_k(u) ∩ top_k(v)| / k,
  over users with a non-empty top k (a seeded sample of at most ``sample`` of them).
- long tail: sort items by popularity (ties by id); the head is the fewest top items whose
  popularity sums to at least ``share`` of the total; every other item is the long tail.

Fairness over user groups (user -> label; users without a label are left out); a group with
fewer than ``min_users`` scored users is reported but left out of the gap:

- exposure gap (demographic parity of exposure): a user's score is the share of long-tail
  items in their top k (users with an empty top k are left out); a group's value is its
  users' mean; gap = max - min over the groups counted.
- equal-opportunity gap: the same over recall@k of users with relevant items (a user
  without a list scores 0).

Slices:

- activity: new (no training event), light (fewer than ``light`` events), heavy (at least
  ``heavy``), medium otherwise.
- popularity deciles: items with training popularity > 0, sorted by popularity (ties by
  id), are cut into ten equal-count deciles, decile 1 the most popular; items with no
  training popularity are decile 10. A decile's recall is the share of held-out relevant
  (user, item) pairs of its items that are in that user's top k.

Baseline comparison: 100 * (value - baseline) / |baseline| per metric key both share.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from itertools import chain

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recmill.evaluation.metrics import Recs, Truth, _check_k, per_user
from recmill.schema import ITEM_ID

ATTRIBUTES = ("category", "aisle", "department", "brand")
Popularity = Mapping[str, float] | pd.Series


# --- shared building blocks -----------------------------------------------------


def _top(ranked: Sequence[str], k: int) -> list[str]:
    """The distinct items among the first k entries, in order."""
    return list(dict.fromkeys(ranked[:k]))


def _indicator(lists: Sequence[Sequence[str]], index: pd.Index) -> sp.csr_matrix:
    """Lists x index items, 1 where a list holds the item; items outside index are dropped."""
    rows = np.repeat(np.arange(len(lists)), [len(items) for items in lists])
    cols = index.get_indexer(list(chain.from_iterable(lists)))
    keep = cols >= 0
    data = np.ones(int(keep.sum()))
    return sp.csr_matrix((data, (rows[keep], cols[keep])), shape=(len(lists), len(index)))


def _as_series(popularity: Popularity) -> pd.Series:
    return popularity.astype(float) if isinstance(popularity, pd.Series) else pd.Series(popularity, dtype=float)


def _mean(values: Collection[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


# --- beyond-accuracy metrics ----------------------------------------------------


def item_vectors(items: pd.DataFrame, columns: Sequence[str] = ATTRIBUTES) -> tuple[np.ndarray, sp.csr_matrix]:
    """(item ids, items x attribute values matrix): one-hot columns of ``columns`` that exist.

    Each (column, value) pair is one feature, so "Dairy" as a category and as a department
    differ. Missing and blank values are no feature; rows are L2-normalised, and an item
    without any attribute has a zero row.
    """
    ids = items[ITEM_ID].astype(str).to_numpy()
    rows, cols, width = [], [], 0
    for column in (c for c in columns if c in items):
        values = items[column].astype("string").str.strip().replace("", pd.NA)
        codes, uniques = pd.factorize(values)
        present = codes >= 0
        rows.append(np.flatnonzero(present))
        cols.append(codes[present] + width)
        width += len(uniques)
    rows = np.concatenate(rows) if rows else np.array([], dtype=int)
    cols = np.concatenate(cols) if cols else np.array([], dtype=int)
    # a row with n one-hot entries has norm sqrt(n)
    per_row = np.bincount(rows, minlength=len(ids))
    data = 1.0 / np.sqrt(per_row[rows])
    return ids, sp.csr_matrix((data, (rows, cols)), shape=(len(ids), width))


def diversity(ranked: Recs, k: int, ids: Sequence[str], matrix: sp.spmatrix) -> float:
    """Intra-list diversity: mean over users of the mean pairwise (1 - cosine) of their top k.

    Rows of ``matrix`` are normalised here, so any item vectors will do. Items unknown to
    ``ids`` or with a zero vector are skipped; users with fewer than two remaining items
    are left out. NaN when no user is left.
    """
    _check_k(k)
    matrix = sp.csr_matrix(matrix, dtype=float)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    known = norms > 0
    unit = sp.diags(1.0 / norms[known]) @ matrix[known]
    x = _indicator([_top(items, k) for items in ranked.values()], pd.Index(np.asarray(ids)[known]))
    m = np.asarray(x.sum(axis=1)).ravel()
    # For unit vectors, the sum of cos over the m(m-1)/2 pairs is (|sum of vectors|^2 - m) / 2.
    summed = x @ unit
    squared = np.asarray(summed.multiply(summed).sum(axis=1)).ravel()
    eligible = m >= 2
    if not eligible.any():
        return math.nan
    m, squared = m[eligible], squared[eligible]
    return float(np.mean(1.0 - (squared - m) / (m * (m - 1))))


def novelty(ranked: Recs, k: int, popularity: Popularity, n_users: int) -> float:
    """Mean over users of the mean self-information -log2(popularity / n_users) of their top k.

    An item with no popularity counts as popularity 1. NaN when every top k is empty.
    """
    _check_k(k)
    if n_users < 1:
        raise ValueError(f"n_users must be at least 1, got {n_users}")
    tops = [top for top in (_top(items, k) for items in ranked.values()) if top]
    if not tops:
        return math.nan
    counts = _as_series(popularity).reindex(list(chain.from_iterable(tops))).fillna(0).clip(lower=1)
    if (counts > n_users).any():
        raise ValueError(f"popularity of {counts.idxmax()!r} ({counts.max():g}) exceeds n_users ({n_users})")
    info = -np.log2(counts.to_numpy() / n_users)
    lengths = np.array([len(top) for top in tops])
    per_list = np.bincount(np.repeat(np.arange(len(tops)), lengths), weights=info) / lengths
    return float(per_list.mean())


def serendipity(ranked: Recs, truth: Truth, k: int, baseline_ranked: Recs) -> float:
    """Mean over users with relevant items of |relevant top-k items not in the baseline's top k| / k."""
    _check_k(k)
    scores = []
    for user, relevant in truth.items():
        relevant = set(relevant)
        if relevant:
            expected = set(baseline_ranked.get(user, ())[:k])
            unexpected = [i for i in _top(ranked.get(user, ()), k) if i in relevant and i not in expected]
            scores.append(len(unexpected) / k)
    return _mean(scores)


def personalisation(ranked: Recs, k: int, sample: int, seed: int) -> float:
    """1 - mean pairwise |top_k(u) ∩ top_k(v)| / k over a seeded sample of users' lists.

    Users with an empty top k are left out; at most ``sample`` of the others are drawn
    (from the sorted user ids, so the draw does not depend on dict order). With X the
    sampled users x items 0/1 matrix, the overlaps of all pairs sum to
    (1'X X'1 - trace(X X')) / 2 = (|column sums of X|^2 - nnz(X)) / 2, which needs no
    users x users matrix. NaN with fewer than two users.
    """
    _check_k(k)
    if sample < 2:
        raise ValueError(f"sample must be at least 2, got {sample}")
    tops = {user: _top(items, k) for user, items in ranked.items()}
    users = sorted(user for user, top in tops.items() if top)
    if len(users) > sample:
        chosen = np.random.default_rng(seed).choice(len(users), sample, replace=False)
        users = [users[i] for i in np.sort(chosen)]
    n = len(users)
    if n < 2:
        return math.nan
    lists = [tops[u] for u in users]
    x = _indicator(lists, pd.Index(sorted(set(chain.from_iterable(lists)))))
    counts = np.asarray(x.sum(axis=0)).ravel()
    shared = (counts @ counts - x.nnz) / 2
    return float(1.0 - shared / (n * (n - 1) / 2) / k)


def long_tail_items(popularity: Popularity, share: float) -> set[str]:
    """Items outside the head: the fewest most popular items holding ``share`` of the total."""
    if not 0 < share < 1:
        raise ValueError(f"share must be between 0 and 1, got {share}")
    pop = _as_series(popularity).sort_index().sort_values(ascending=False, kind="stable")
    total = pop.sum()
    if not total > 0:
        raise ValueError("popularity holds no interactions")
    # a relative tolerance, so that 0.28 * 25 = 7.000000000000001 is reached by a sum of 7
    head = int(np.searchsorted(pop.cumsum().to_numpy(), share * total * (1 - 1e-12))) + 1
    return set(pop.index[head:])


def beyond_accuracy(
    ranked: Recs,
    truth: Truth,
    k: int,
    *,
    ids: Sequence[str],
    matrix: sp.spmatrix,
    popularity: Popularity,
    n_users: int,
    baseline_ranked: Recs,
    sample: int,
    seed: int,
) -> dict[str, float]:
    """{"diversity@k", "novelty@k", "serendipity@k", "personalisation@k"} of one model's lists."""
    return {
        f"diversity@{k}": diversity(ranked, k, ids, matrix),
        f"novelty@{k}": novelty(ranked, k, popularity, n_users),
        f"serendipity@{k}": serendipity(ranked, truth, k, baseline_ranked),
        f"personalisation@{k}": personalisation(ranked, k, sample, seed),
    }


# --- fairness -------------------------------------------------------------------


def _group_gap(scores: Mapping[str, float], groups: Mapping[str, Hashable], min_users: int) -> tuple[float, dict]:
    """(max - min of the group means over groups of at least min_users, group -> {value, users})."""
    by_group = defaultdict(list)
    for user, value in scores.items():
        label = groups.get(user)
        if label is not None and not pd.isna(label):
            by_group[label].append(value)
    per_group = {g: {"value": _mean(v), "users": len(v)} for g, v in sorted(by_group.items(), key=lambda kv: str(kv[0]))}
    counted = [p["value"] for p in per_group.values() if p["users"] >= min_users]
    gap = max(counted) - min(counted) if len(counted) >= 2 else math.nan
    return gap, per_group


def exposure_gap(
    ranked: Recs, k: int, groups: Mapping[str, Hashable], tail: Collection[str], min_users: int = 20
) -> tuple[float, dict]:
    """Spread over groups of the mean share of long-tail items in users' top k.

    Returns (gap, {group: {"value": mean share, "users": users scored}}); gap is max - min
    over groups with at least min_users users, NaN when fewer than two such groups.
    """
    _check_k(k)
    tail = set(tail)
    tops = {user: _top(items, k) for user, items in ranked.items()}
    shares = {u: sum(i in tail for i in top) / len(top) for u, top in tops.items() if top}
    return _group_gap(shares, groups, min_users)


def equal_opportunity_gap(
    ranked: Recs, truth: Truth, k: int, groups: Mapping[str, Hashable], min_users: int = 20
) -> tuple[float, dict]:
    """Spread over groups of the mean recall@k of users with relevant items.

    Returns (gap, {group: {"value": mean recall, "users": users scored}}); gap is max - min
    over groups with at least min_users users, NaN when fewer than two such groups.
    """
    return _group_gap(per_user("recall", truth, ranked, k), groups, min_users)


# --- slices ---------------------------------------------------------------------


def activity_slices(train_counts: Mapping[str, int], users: Iterable[str], light: int, heavy: int) -> dict[str, str]:
    """user -> "new" (no training event), "light" (< light), "heavy" (>= heavy) or "medium"."""
    if light > heavy:
        raise ValueError(f"light ({light}) must not exceed heavy ({heavy})")
    out = {}
    for user in users:
        n = train_counts.get(user, 0)
        out[user] = "new" if n == 0 else "light" if n < light else "heavy" if n >= heavy else "medium"
    return out


def popularity_decile_recall(ranked: Recs, truth: Truth, k: int, popularity: Popularity) -> dict[int, float]:
    """Popularity decile (1 = most popular tenth) -> share of its relevant pairs in the top k.

    Deciles without a relevant pair are absent.
    """
    _check_k(k)
    pop = _as_series(popularity)
    pop = pop[pop > 0].sort_index().sort_values(ascending=False, kind="stable")
    n = len(pop)
    decile = {item: 10 * r // n + 1 for r, item in enumerate(pop.index)}
    pairs, hits = Counter(), Counter()
    for user, relevant in truth.items():
        top = set(_top(ranked.get(user, ()), k))
        for item in set(relevant):
            d = decile.get(item, 10)
            pairs[d] += 1
            hits[d] += item in top
    return {d: hits[d] / pairs[d] for d in sorted(pairs)}


# --- baseline comparison --------------------------------------------------------


def compare_to_baseline(metrics: Mapping[str, float], baseline: Mapping[str, float]) -> dict[str, float | None]:
    """Per key in both: 100 * (value - baseline) / |baseline|; None for a zero or NaN baseline or a NaN value."""
    out = {}
    for key, value in metrics.items():
        if key in baseline:
            base = baseline[key]
            defined = base != 0 and math.isfinite(base) and math.isfinite(value)
            out[key] = 100.0 * (value - base) / abs(base) if defined else None
    return out
