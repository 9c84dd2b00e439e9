"""Buy-again baskets: choosing the basket with the best expected F1, and scoring it.

The task is the Instacart reorder task: for each user, predict which of the items they
bought before will be in their next order. A basket is scored by its F1 against the
items actually reordered, with the token ``"None"`` standing for "no reorder":

- an empty prediction is written as {"None"};
- if the user reorders nothing, the truth is {"None"};
- "None" is an ordinary element otherwise, so {"None"} vs {"None"} scores 1 and
  {"a", "None"} vs {"None"} scores 2/3. A real item may not be called "None".

Given each item's probability of being reordered, ``expected_f1_basket`` picks the
basket with the highest expected F1 when items are independent Bernoulli variables,
exactly, by the dynamic programme of Ye, Chai, Lee & Chieu, "Optimizing F-measures: a
tale of two approaches" (ICML 2012), in the form used in the Instacart competition:
the best basket is the k most probable items, perhaps with "None" added, and the
expected F1 of every such prefix is computed from the Poisson-binomial distributions
of the reorders inside and outside the prefix. ``expected_f1_baskets`` does the same
for many users at once.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

import numpy as np
import pandas as pd

from recmill.data.interactions import basket_ids
from recmill.schema import ITEM_ID, ORDER_ID, TIMESTAMP, USER_ID

NONE = "None"
PROBABILITY = "probability"

# Floats held by one chunk's table of prefix-hit distributions (about 32 MB).
_CHUNK_FLOATS = 4_000_000


# --- scoring a basket -----------------------------------------------------------


def _with_none(items: Collection[str]) -> set[str]:
    return set(items) or {NONE}


def f1(predicted: Collection[str], actual: Collection[str]) -> float:
    """F1 of a predicted basket against the items actually reordered.

    Either side, when empty, is read as {"None"} ("no reorder"), and "None" matches
    itself, so an empty prediction for a user who reorders nothing scores 1.
    """
    predicted, actual = _with_none(predicted), _with_none(actual)
    return 2 * len(predicted & actual) / (len(predicted) + len(actual))


def mean_f1(predicted: Mapping[str, Collection[str]], actual: Mapping[str, Collection[str]]) -> float:
    """Mean f1 over the users in actual; a user missing from predicted predicts {"None"}."""
    if not actual:
        raise ValueError("actual is empty, so there is nothing to average")
    return sum(f1(predicted.get(user, ()), truth) for user, truth in actual.items()) / len(actual)


# --- expected F1 ----------------------------------------------------------------


def _poisson_binomial(probabilities: Sequence[float]) -> np.ndarray:
    """pmf of the number of successes among independent Bernoulli(p) variables."""
    pmf = np.ones(1)
    for p in probabilities:
        pmf = np.convolve(pmf, [1.0 - p, p])
    return pmf


def _check_probabilities(items: Sequence[str], probabilities: Sequence[float]) -> np.ndarray:
    p = np.asarray(probabilities, dtype=float).reshape(-1)
    if len(items) != len(p):
        raise ValueError(f"{len(items)} items but {len(p)} probabilities")
    if len(set(items)) != len(items):
        raise ValueError("items are not unique")
    if NONE in items:
        raise ValueError(f"{NONE!r} is reserved for 'no reorder' and cannot be an item")
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError("probabilities must lie in [0, 1]")
    return p


def expected_f1(
    basket: Collection[str],
    items: Sequence[str],
    probabilities: Sequence[float],
    none_probability: float | None = None,
) -> float:
    """Expected f1 of basket when each item is reordered independently with its probability.

    none_probability is the chance that the truth is {"None"}; by default the chance
    that no item is reordered, prod(1 - p), which makes the result exact. A value given
    separately (from a model of "no reorder") replaces it in the "None" term only.
    An empty basket is {"None"}. Computed directly from the distributions of the
    reorders inside and outside the basket, independently of expected_f1_basket.
    """
    p = _check_probabilities(items, probabilities)
    chosen = set(basket) - {NONE}
    if chosen - set(items):
        raise ValueError(f"basket items without a probability: {sorted(chosen - set(items))}")
    with_none = NONE in basket or not chosen
    if none_probability is None:
        none_probability = float(np.prod(1.0 - p))
    inside = np.array([i in chosen for i in items], dtype=bool)
    hits = _poisson_binomial(p[inside])[:, None]  # reorders inside the basket
    misses = _poisson_binomial(p[~inside])[None, :]  # reorders outside it
    size = len(chosen) + with_none
    a = np.arange(hits.shape[0])[:, None]
    r = np.arange(misses.shape[1])[None, :]
    value = float((hits * misses * 2 * a / (size + a + r)).sum())
    if with_none:
        value += none_probability * 2 / (size + 1)
    return value


def _prefix_values(p: np.ndarray, tail: np.ndarray, p_none: np.ndarray) -> np.ndarray:
    """Expected F1 of every top-k basket of many users at once.

    p: (users, n) candidate probabilities, each row sorted descending; tail: (users, m)
    probabilities of the user's other items, which count as possible reorders but are
    never put in the basket; p_none: (users,). Returns (users, n + 1, 2): [:, k, 0] for
    the top k items alone, [:, k, 1] for the top k plus "None"; [:, 0, 0], the empty
    basket, is -inf since an empty prediction means {"None"}.

    With A the reorders among the top k and R those among the rest, the item part of
    the expected F1 is E[2A / (size + A + R)]. hits[k] holds the pmf of A for every k
    (forward pass, O(n^2)); inv[c - 1] = E[1 / (c + R)] is carried from the tail and
    then from k = n down to 1 (backward pass, O((n + m)^2)), so each prefix costs one
    O(n) sum.
    """
    users, n = p.shape
    hits = np.zeros((n + 1, users, n + 1))  # hits[k, :, a] = P(A = a) for the top k
    hits[0, :, 0] = 1.0
    for k in range(1, n + 1):
        q = p[:, k - 1, None]
        hits[k] = (1.0 - q) * hits[k - 1]
        hits[k, :, 1:] += q * hits[k - 1, :, :-1]

    # Starts as R = 0. Each item added to R leaves the top entry stale, so starting
    # with entries up to c = 2n + 1 + m, after the tail and n - k more items those up
    # to c = n + k + 1 >= 2k + 1 are exact: every c = size + a read at prefix k.
    inv = np.tile(1.0 / np.arange(1, 2 * n + 2 + tail.shape[1]), (users, 1))
    for q in tail.T[:, :, None]:
        inv[:, :-1] = (1.0 - q) * inv[:, :-1] + q * inv[:, 1:]
    twice_a = 2.0 * np.arange(n + 1)
    values = np.zeros((users, n + 1, 2))
    for k in range(n, 0, -1):
        weighted = twice_a[: k + 1] * hits[k, :, : k + 1]
        values[:, k, 0] = (weighted * inv[:, k - 1 : 2 * k]).sum(axis=1)  # c = k + a
        values[:, k, 1] = (weighted * inv[:, k : 2 * k + 1]).sum(axis=1)  # c = k + 1 + a
        q = p[:, k - 1, None]
        inv[:, :-1] = (1.0 - q) * inv[:, :-1] + q * inv[:, 1:]
    # the truth is {"None"} with probability p_none: F1 = 2 / (k + 2) with "None" predicted
    values[:, :, 1] += p_none[:, None] * 2.0 / (np.arange(n + 1) + 2.0)
    values[:, 0, 0] = -np.inf
    return values


def _best_prefixes(p: np.ndarray, tail: np.ndarray, p_none: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(k, with_none) of each row's best basket; ties go to fewer items, then to the basket without "None"."""
    best = _prefix_values(p, tail, p_none).reshape(len(p), -1).argmax(axis=1)
    return best // 2, (best % 2).astype(bool)


def expected_f1_basket(
    items: Sequence[str],
    probabilities: Sequence[float],
    none_probability: float | None = None,
    max_items: int = 80,
) -> list[str]:
    """The basket with the highest expected f1, most probable item first, "None" last if in it.

    Items are independent Bernoulli variables with the given probabilities;
    none_probability is the chance that the truth is {"None"} (default prod(1 - p) over
    all items; see expected_f1). The result may be ["None"] alone or end with "None".

    Only the max_items most probable items can enter the basket, because the
    programme's table costs O(n^2) time and memory per user, and an item is only worth
    adding when its probability is above roughly half the best achievable F1, so a
    basket of more than 80 items is practically never the best one. The other items
    still count as possible reorders (they make the truth larger), exactly, at a cost
    of O(m (n + m)) for m of them: dropping them outright would understate the size of
    the truth and pick too small a basket for users with long histories.
    """
    p = _check_probabilities(items, probabilities)
    if none_probability is None:
        none_probability = float(np.prod(1.0 - p))
    order = np.argsort(-p, kind="stable")  # ties keep the given order
    tail = p[order[max_items:]][None, :]
    order = order[:max_items]
    k, with_none = _best_prefixes(p[order][None, :], tail, np.array([none_probability]))
    return [items[i] for i in order[: k[0]]] + ([NONE] if with_none[0] else [])


def expected_f1_baskets(
    predictions: pd.DataFrame,
    none_probability: Mapping[str, float] | None = None,
    max_items: int = 80,
) -> dict[str, list[str]]:
    """expected_f1_basket for every user of predictions (user_id, item_id, probability) at once.

    none_probability maps users to their chance of reordering nothing (default, and for
    users missing from it, prod(1 - p) over the user's items). Users with the same
    number of candidate items go through the programme together, in chunks.
    """
    df = predictions[[USER_ID, ITEM_ID, PROBABILITY]]
    codes, users = pd.factorize(df[USER_ID].to_numpy())
    item_codes, item_ids = pd.factorize(df[ITEM_ID].to_numpy())
    if not pd.Index(codes.astype(np.int64) * len(item_ids) + item_codes).is_unique:
        raise ValueError("predictions hold a (user, item) pair more than once")
    if NONE in item_ids:
        raise ValueError(f"{NONE!r} is reserved for 'no reorder' and cannot be an item")
    prob = df[PROBABILITY].to_numpy(dtype=float)
    if not np.all((prob >= 0) & (prob <= 1)):
        raise ValueError("probabilities must lie in [0, 1]")

    with np.errstate(divide="ignore"):  # log(0) = -inf for a certain reorder, giving p_none = 0
        p_none = np.exp(np.bincount(codes, np.log1p(-prob), minlength=len(users)))
    if none_probability is not None:
        given = pd.Series(users).map(none_probability).to_numpy(dtype=float)
        p_none = np.where(np.isnan(given), p_none, given)
    by_user = np.argsort(codes, kind="stable")  # rows grouped by user, in the given order
    prob, item_codes = prob[by_user], item_codes[by_user]
    sizes = np.bincount(codes, minlength=len(users))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])

    baskets = {}
    for size in np.unique(sizes):
        group = np.flatnonzero(sizes == size)
        n = min(size, max_items)
        for chunk in np.array_split(group, -(-len(group) * (n + 1) ** 2 // _CHUNK_FLOATS)):
            rows = starts[chunk, None] + np.arange(size)
            # each user's rows, most probable first; ties keep the given order
            best_first = np.argsort(-prob[rows], axis=1, kind="stable")
            rows = np.take_along_axis(rows, best_first, axis=1)
            ks, with_none = _best_prefixes(prob[rows[:, :n]], prob[rows[:, n:]], p_none[chunk])
            for u, user_rows, k, w in zip(chunk, rows, ks, with_none):
                baskets[users[u]] = list(item_ids[item_codes[user_rows[:k]]]) + ([NONE] if w else [])
    return baskets


# --- baselines and truth from order history -------------------------------------


def _orders(history: pd.DataFrame) -> pd.DataFrame:
    """One row per (user, basket, item) with the basket's time, oldest first (order_id holds the basket)."""
    rows = history.assign(**{ORDER_ID: basket_ids(history)})
    rows = rows[[USER_ID, ORDER_ID, ITEM_ID, TIMESTAMP]].drop_duplicates([USER_ID, ORDER_ID, ITEM_ID])
    placed = rows.groupby([USER_ID, ORDER_ID])[TIMESTAMP].transform("min")  # an order's time is its first event
    return rows.assign(placed=placed).sort_values([USER_ID, "placed", ORDER_ID], kind="stable")


def _first_or_last_order(orders: pd.DataFrame, last: bool) -> pd.DataFrame:
    pick = orders.groupby(USER_ID)[ORDER_ID].transform("last" if last else "first")
    return orders[orders[ORDER_ID] == pick]


def _item_sets(rows: pd.DataFrame) -> dict[str, set[str]]:
    return {user: set(items) for user, items in rows.groupby(USER_ID)[ITEM_ID]}


def repeat_last_basket(history: pd.DataFrame) -> dict[str, set[str]]:
    """Each user's last order (by its first event's time) as the reorder prediction.

    history: purchase events (user_id, item_id, timestamp, order_id; a missing order_id
    makes a basket of the day).
    """
    return _item_sets(_first_or_last_order(_orders(history), last=True))


def top_frequent_items(history: pd.DataFrame, n: int | None = None) -> dict[str, set[str]]:
    """Each user's n items bought in the most orders; ties go to the most recently bought, then item_id.

    n=None uses each user's mean basket size (distinct items per order), rounded half
    up and at least 1, so the prediction is about as large as the user's usual order.
    """
    orders = _orders(history)
    stats = orders.groupby([USER_ID, ITEM_ID], as_index=False).agg(orders=(ORDER_ID, "size"), last=("placed", "max"))
    stats = stats.sort_values([USER_ID, "orders", "last", ITEM_ID], ascending=[True, False, False, True], kind="stable")
    if n is None:
        mean_size = orders.groupby(USER_ID).size() / orders.groupby(USER_ID)[ORDER_ID].nunique()
        limit = stats[USER_ID].map(mean_size.map(lambda m: max(1, math.floor(m + 0.5))))
    else:
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        limit = n
    return _item_sets(stats[stats.groupby(USER_ID).cumcount() < limit])


def next_order_truth(history_before: pd.DataFrame, next_orders: pd.DataFrame) -> dict[str, set[str]]:
    """The items of each user's next order that they had bought before, or {"None"}.

    The next order is the user's earliest order in next_orders. Users with no purchase
    in history_before are left out: buying again is undefined for them.
    """
    before = _item_sets(history_before[[USER_ID, ITEM_ID]])
    following = _item_sets(_first_or_last_order(_orders(next_orders), last=False))
    return {user: (items & before[user]) or {NONE} for user, items in following.items() if user in before}


def buy_again_metrics(probabilities: pd.DataFrame, history: pd.DataFrame, held_out: pd.DataFrame) -> dict[str, float]:
    """How well reorder probabilities foretell each user's next order, beside the baselines.

    probabilities: user_id, item_id, probability of the (user, item bought before) pairs.
    history and held_out: purchase events before and after the model's data. The next
    order is the user's first basket in held_out that history holds no part of (a split
    in time can cut an order in two). Over the users with a history and a next order:
    AUC and log loss of the pairs (label: the item is in the next order), and the mean
    F1 of the expected-F1 baskets, of repeating the last basket and of the user's
    most frequent items (as many as their mean basket size).
    """
    from sklearn.metrics import log_loss, roc_auc_score

    started = set(zip(history[USER_ID].astype(str), basket_ids(history)))
    keys = list(zip(held_out[USER_ID].astype(str), basket_ids(held_out)))
    complete = held_out[[key not in started for key in keys]]
    truth = next_order_truth(history, complete)
    if not truth:
        raise ValueError("no user has a purchase history and a complete next order to score")
    pairs = probabilities[probabilities[USER_ID].astype(str).isin(truth)]
    labels = np.array([item in truth[user] for user, item in zip(pairs[USER_ID].astype(str), pairs[ITEM_ID].astype(str))])
    p = pairs[PROBABILITY].to_numpy(dtype=float)
    both_classes = 0 < labels.sum() < len(labels)
    return {
        "auc": float(roc_auc_score(labels, p)) if both_classes else float("nan"),
        "log_loss": float(log_loss(labels, p, labels=[False, True])) if len(labels) else float("nan"),
        "basket_f1": mean_f1(expected_f1_baskets(pairs), truth),
        "basket_f1_repeat_last_basket": mean_f1(repeat_last_basket(history), truth),
        "basket_f1_top_frequent": mean_f1(top_frequent_items(history), truth),
        "basket_users": float(len(truth)),
    }
