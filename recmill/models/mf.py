"""Biased matrix factorisation: score = global mean + user bias + item bias + user . item factors.

Explicit feedback (ratings) fits each user's latest rating of an item. Implicit feedback
fits target 1 for every pair in the weighted matrix, with weight 1 + log1p(summed event
weight), and target 0 with weight 1 for ``negatives`` items drawn uniformly per positive,
redrawn each epoch (a draw that hits one of the user's own items is dropped). Either way
the loss is the weighted squared error plus ``regularization`` times the squared norms of
the factors and biases of each sample; training is minibatch SGD on torch (CPU, one
thread): every sample's Funk-SVD step, with step size ``learning_rate``, applied a batch
at a time. The global mean is fixed: the mean rating, or the weighted mean target.

``fold_in`` updates users from new events with the item side frozen: a ridge solve per user.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from threadpoolctl import threadpool_limits

from recmill import schema as S
from recmill.arrays import unique_ints
from recmill.config import InteractionsConfig, MFConfig
from recmill.data.interactions import InteractionData, event_codes, event_weights, index_of
from recmill.errors import RecmillError
from recmill.models.base import Recommender, dot_scores, text_array, unit_rows
from recmill.progress import steps

HISTORY_SHOWN = 5
SOLVE_CHUNK = 256  # users per batch of stacked solves
SOLVE_ENTRIES = 100_000  # at most this many (padded) user-item entries in one batch


def confidence(weights: np.ndarray) -> np.ndarray:
    """Implicit weight of a positive pair from its summed event weight: 1 + log(1 + w)."""
    return 1.0 + np.log1p(weights)


def _pairs(events: pd.DataFrame, user_ids, item_ids) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row and column numbers of the events, and which events have both ids known."""
    rows = index_of(user_ids, events[S.USER_ID])
    cols = index_of(item_ids, events[S.ITEM_ID])
    return rows, cols, (rows >= 0) & (cols >= 0)


def rating_matrix(events: pd.DataFrame, user_ids, item_ids) -> sp.csr_matrix:
    """Each user's latest rating of each item (users x items); other events are left out."""
    ratings = events[events[S.EVENT_TYPE].eq("rating").to_numpy(bool)].sort_values(S.TIMESTAMP, kind="stable")
    rows, cols, known = _pairs(ratings, user_ids, item_ids)
    latest = pd.DataFrame({"r": rows[known], "c": cols[known], "v": ratings[S.VALUE].to_numpy(np.float64)[known]})
    latest = latest.drop_duplicates(["r", "c"], keep="last")
    return sp.csr_matrix((latest["v"], (latest["r"], latest["c"])), shape=(len(user_ids), len(item_ids)), dtype=np.float32)


def _sparse(rows, cols, values, shape) -> sp.csr_matrix:
    m = sp.csr_matrix((values, (rows, cols)), shape=shape, dtype=np.float32)
    m.sum_duplicates()
    m.eliminate_zeros()
    return m


def _grow(m: sp.csr_matrix, n_rows: int) -> sp.csr_matrix:
    """The matrix with empty rows appended up to n_rows."""
    extra = sp.csr_matrix((n_rows - m.shape[0], m.shape[1]), dtype=m.dtype)
    return sp.vstack([m, extra], format="csr")


class MFRecommender(Recommender):
    name = "mf"
    Config = MFConfig
    state = (
        "user_factors_", "item_factors_", "user_bias_", "item_bias_", "global_mean_", "rating_range_", "explicit_",
        "signal_", "item_brands_", "item_tags_",
    )
    predicts_ratings = True
    has_explanations = True
    folds_in = True

    # ---- training -------------------------------------------------------------------
    def _fit(self, data: InteractionData) -> None:
        has_ratings = bool(data.events[S.EVENT_TYPE].eq("rating").any())
        explicit = self.config.feedback == "explicit" or (self.config.feedback == "auto" and has_ratings)
        if explicit and not has_ratings:
            raise RecmillError("model 'mf' with feedback 'explicit' needs rating events; the data has none")
        self.explicit_ = np.array(explicit)
        self.signal_ = rating_matrix(data.events, self.user_ids_, self.item_ids_) if explicit else data.matrix.copy()
        self.signal_.sort_indices()
        if self.signal_.nnz == 0:
            raise RecmillError("model 'mf' found no ratings or weighted interactions to fit")
        items = data.items.set_index(data.items[S.ITEM_ID].astype(str)) if len(data.items) else pd.DataFrame()
        blank = [""] * data.n_items
        self.item_brands_ = text_array(items["brand"].reindex(self.item_ids_) if "brand" in items else blank)
        self.item_tags_ = text_array(items["tags"].reindex(self.item_ids_) if "tags" in items else blank)
        if explicit:
            self.global_mean_ = np.array(float(self.signal_.data.mean()))
            self.rating_range_ = np.array([self.signal_.data.min(), self.signal_.data.max()], dtype=np.float64)
        else:
            weight = confidence(self.signal_.data.astype(np.float64)).sum()
            self.global_mean_ = np.array(weight / (weight + self.config.negatives * self.signal_.nnz))
            self.rating_range_ = np.array([-np.inf, np.inf])
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # one thread: the scatter-adds then sum in a fixed order
        try:
            self._train()
        finally:
            torch.set_num_threads(threads)

    def _pairs(self) -> tuple[sp.coo_matrix, np.ndarray]:
        """The signal's pairs, and row * n_items + col of each (sorted: CSR order)."""
        coo = self.signal_.tocoo()
        return coo, coo.row.astype(np.int64) * self.signal_.shape[1] + coo.col

    def _samples(self, rng: np.random.Generator, pairs: tuple[sp.coo_matrix, np.ndarray] | None = None) -> tuple[np.ndarray, ...]:
        """One epoch's rows, columns, targets and weights: every pair of the signal, or a
        fresh draw of pairs_per_epoch of them, and (implicit) sampled negatives for each
        that the user does not have. ``pairs``: _pairs(), when the caller keeps it."""
        coo, own = pairs if pairs is not None else self._pairs()
        rows, cols, data = coo.row, coo.col, coo.data
        budget = self.config.pairs_per_epoch
        if budget is not None and coo.nnz > budget:
            kept = np.sort(rng.choice(coo.nnz, size=budget, replace=False))
            rows, cols, data = rows[kept], cols[kept], data[kept]
        if self.explicit_:
            return rows, cols, data.astype(np.float32), np.ones(rows.size, np.float32)
        n_items = self.signal_.shape[1]
        negative_rows = np.repeat(rows, self.config.negatives)
        negative_cols = rng.integers(0, n_items, negative_rows.size)
        keys = negative_rows.astype(np.int64) * n_items + negative_cols
        hit = own[np.minimum(np.searchsorted(own, keys), own.size - 1)] == keys
        negative_rows, negative_cols = negative_rows[~hit], negative_cols[~hit]
        return (
            np.concatenate([rows, negative_rows]),
            np.concatenate([cols, negative_cols]),
            np.concatenate([np.ones(rows.size, np.float32), np.zeros(negative_rows.size, np.float32)]),
            np.concatenate([confidence(data).astype(np.float32), np.ones(negative_rows.size, np.float32)]),
        )

    def _train(self) -> None:
        cfg = self.config
        n_users, n_items = self.signal_.shape
        generator = torch.Generator().manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        P = torch.randn(n_users, cfg.factors, generator=generator) * cfg.init_std
        Q = torch.randn(n_items, cfg.factors, generator=generator) * cfg.init_std
        bu, bi = torch.zeros(n_users), torch.zeros(n_items)
        touched_users, touched_items = np.zeros(n_users, bool), np.zeros(n_items, bool)
        pairs = self._pairs()  # once, not per epoch: tens of millions of them at Instacart size
        with steps(f"mf: {cfg.epochs} epochs", cfg.epochs) as advance:
            for _ in range(cfg.epochs):
                self._epoch(rng, pairs, P, Q, bu, bi, touched_users, touched_items)
                advance()
        if not (torch.isfinite(P).all() and torch.isfinite(Q).all()):
            raise RecmillError(f"model 'mf' diverged with learning_rate {cfg.learning_rate}: lower it")
        # a row no sample reached still holds its random start: zero it, so it scores as the baseline
        P[torch.from_numpy(~touched_users)], bu[torch.from_numpy(~touched_users)] = 0, 0
        Q[torch.from_numpy(~touched_items)], bi[torch.from_numpy(~touched_items)] = 0, 0
        self.user_factors_, self.item_factors_ = P.numpy(), Q.numpy()
        self.user_bias_, self.item_bias_ = bu.numpy(), bi.numpy()

    def _epoch(self, rng, pairs, P, Q, bu, bi, touched_users, touched_items) -> None:
        """One pass of mini-batch SGD over this epoch's samples, updating the factors in place."""
        cfg = self.config
        mu, lr, reg = float(self.global_mean_), cfg.learning_rate, cfg.regularization
        rows, cols, targets, weights = self._samples(rng, pairs)
        touched_users[rows], touched_items[cols] = True, True
        order = torch.from_numpy(rng.permutation(rows.size))
        users, items = torch.from_numpy(rows.astype(np.int64))[order], torch.from_numpy(cols.astype(np.int64))[order]
        ys, ws = torch.from_numpy(targets)[order], torch.from_numpy(weights)[order]
        for start in range(0, rows.size, cfg.batch_size):
            u, i = users[start : start + cfg.batch_size], items[start : start + cfg.batch_size]
            # index_select: the same rows as P[u], gathered twice as fast on a CPU
            p, q, b_u, b_i = P.index_select(0, u), Q.index_select(0, i), bu.index_select(0, u), bi.index_select(0, i)
            err = ws[start : start + cfg.batch_size] * (ys[start : start + cfg.batch_size] - (mu + b_u + b_i + (p * q).sum(1)))
            bu.index_add_(0, u, lr * (err - reg * b_u))
            bi.index_add_(0, i, lr * (err - reg * b_i))
            err = err.unsqueeze(1)
            P.index_add_(0, u, lr * (err * q - reg * p))
            Q.index_add_(0, i, lr * (err * p - reg * q))

    # ---- scoring --------------------------------------------------------------------
    def _user_state(self, data: InteractionData) -> dict[str, object]:
        """Each user's signal from their events, and their factors and bias solved over it
        with the item side frozen (as fold_in does)."""
        self.signal_ = rating_matrix(data.events, self.user_ids_, self.item_ids_) if self.explicit_ else data.matrix.copy().astype(np.float32)
        self.signal_.sort_indices()
        with threadpool_limits(1, "blas"):
            factors, biases = _solve_users(self, np.arange(data.n_users))
        return {"signal_": self.signal_, "user_factors_": factors, "user_bias_": biases}

    def _score(self, rows: np.ndarray) -> np.ndarray:
        """Unclipped predictions: clipping would tie every item predicted above the top rating."""
        base = float(self.global_mean_) + self.user_bias_[rows, None] + self.item_bias_[None, :]
        return base + dot_scores(self.user_factors_[rows], self.item_factors_)

    def predict(self, user_ids, item_ids) -> np.ndarray:
        """Predicted ratings; an unknown user or item contributes no bias and no factors.
        Explicit feedback is clipped to the range of the training ratings."""
        self._check_fitted()
        users = np.asarray(list(user_ids), dtype=object).astype(str)
        items = np.asarray(list(item_ids), dtype=object).astype(str)
        if len(users) != len(items):
            raise RecmillError(f"predict needs as many items as users, got {len(items)} and {len(users)}")
        rows = self.user_rows(users)
        cols = self.item_cols(items)
        known_u, known_i = rows >= 0, cols >= 0
        dots = np.einsum("ij,ij->i", self.user_factors_[rows], self.item_factors_[cols])
        pred = (
            float(self.global_mean_)
            + np.where(known_u, self.user_bias_[rows], 0.0)
            + np.where(known_i, self.item_bias_[cols], 0.0)
            + np.where(known_u & known_i, dots, 0.0)
        )
        return np.clip(pred, *self.rating_range_)

    # ---- explanations ---------------------------------------------------------------
    def _evidence(self, row: int, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The user's history (columns of seen_) and each history item's contribution to
        each target column: cosine(item factors of the history item, of the target) x the
        history item's weight; -inf for the target itself. The weight is the rating minus
        the baseline (global mean + user bias + item bias) for explicit feedback, and the
        pair's confidence for implicit feedback; 0 for a history item without either."""
        history = self.history(row)
        values = self.signal_[row].toarray()[0, history].astype(np.float64)
        if self.explicit_:
            baseline = float(self.global_mean_) + self.user_bias_[row] + self.item_bias_[history]
            weights = np.where(values != 0, values - baseline, 0.0)
        else:
            weights = np.where(values != 0, confidence(values), 0.0)
        contributions = (unit_rows(self.item_factors_[cols]) @ unit_rows(self.item_factors_[history]).T) * weights[None, :]
        contributions[cols[:, None] == history[None, :]] = -np.inf  # an item does not explain itself
        return history, contributions

    def _profile(self, history: np.ndarray) -> Counter:
        """(attribute, value) -> how many history items have it: category, brand, tags."""
        counts = Counter()
        for col in history:
            category, brand = self.item_categories_[col], self.item_brands_[col]
            counts.update([("category", category)] if category else [])
            counts.update([("brand", brand)] if brand else [])
            counts.update(("tag", tag) for tag in set(self.item_tags_[col].split()))
        return counts

    def _attributes(self, col: int, history: np.ndarray, profile: Counter) -> list[dict]:
        """The item's category, brand and tags that other history items share, with how many
        share each: category, then brand, then tags by count (a tag naming the category left out)."""
        category, brand = self.item_categories_[col], self.item_brands_[col]
        own = int(col in history)
        pairs = [("category", category)] if category else []
        pairs += [("brand", brand)] if brand else []
        tags = [("tag", t) for t in dict.fromkeys(self.item_tags_[col].split()) if t != category]
        pairs += sorted(tags, key=lambda pair: -profile[pair])
        return [{"attribute": a, "value": v, "history_items": profile[(a, v)] - own} for a, v in pairs if profile[(a, v)] > own]

    def _sentence(self, row: int, col: int, history: np.ndarray, contributions: np.ndarray, attributes: list[dict]) -> str:
        """'because you rated X and Y; also in Comedy, like 12 items in your history'."""
        best = np.lexsort((history, -contributions))
        helping = history[best[contributions[best] > 0]]
        parts = [self._history_reason(row, helping)] if len(helping) else []
        if attributes:
            a = attributes[0]
            where = {"category": "in", "brand": "by", "tag": "tagged"}[a["attribute"]]
            n = a["history_items"]
            parts.append(f"{'also ' if parts else ''}{where} {a['value']}, like {n} item{'s' if n > 1 else ''} in your history")
        return "; ".join(parts) if parts else self._popular_reason(col)

    def _reasons(self, row: int, items: np.ndarray) -> list[str]:
        history, contributions = self._evidence(row, items)
        profile = self._profile(history)
        return [self._sentence(row, col, history, contributions[n], self._attributes(col, history, profile)) for n, col in enumerate(items)]

    def explain(self, user_id: str, item_id: str) -> dict:
        """The prediction split into its parts, the history items that push it up most
        (contribution = cosine of item factors x rating above baseline, or x confidence for
        implicit feedback; see _evidence), the attributes the item shares with the history,
        and the one-line reason. ``score`` is predict()'s value; the parts sum to it unclipped."""
        self._check_fitted()
        row = int(self.user_rows([user_id])[0])
        col = int(self.item_cols([item_id])[0])
        if row < 0:
            raise RecmillError(f"model 'mf' does not know user '{user_id}'")
        if col < 0:
            raise RecmillError(f"model 'mf' does not know item '{item_id}'")
        history, contributions = self._evidence(row, np.array([col]))
        contributions = contributions[0]
        best = np.lexsort((history, -contributions))
        best = best[np.isfinite(contributions[best])][:HISTORY_SHOWN]
        attributes = self._attributes(col, history, self._profile(history))
        return {
            S.USER_ID: str(user_id),
            S.ITEM_ID: str(item_id),
            "score": float(self.predict([user_id], [item_id])[0]),
            "parts": {
                "global_mean": float(self.global_mean_),
                "user_bias": float(self.user_bias_[row]),
                "item_bias": float(self.item_bias_[col]),
                "interaction": float(self.user_factors_[row] @ self.item_factors_[col]),
            },
            "history": [
                {S.ITEM_ID: str(self.item_ids_[c]), "name": str(self.item_names_[c]), "contribution": float(contributions[j])}
                for j, c in zip(best, history[best])
            ],
            "attributes": attributes,
            "reason": self._sentence(row, col, history, contributions, attributes),
        }


# ---- fold-in ------------------------------------------------------------------------
def fold_in(model: MFRecommender, events: pd.DataFrame, interactions: InteractionsConfig | None = None) -> MFRecommender:
    """Update the users of these events (canonical columns) without retraining, and return
    the same model object, changed in place.

    The item side (factors, biases, global mean) is frozen; events on items the model does
    not know are left out. Users the model does not know are appended. Each user's events
    merge into their training signal (a newer rating replaces an older one; implicit event
    weights, from ``interactions``, add up), then the user's bias and factors are re-solved
    in closed form over their whole signal: ridge regression on features [item factors, 1]
    with penalty ``fold_in_regularization``. Explicit: target rating - mean - item bias, weight
    1. Implicit: the expected training loss, i.e. target 1 with the pair's confidence for
    the user's items, and target 0 for every other item with weight negatives x (user's
    items) / (catalogue size), the rate at which training samples it (an ALS-style solve
    through the Gram matrix of all items). seen_ and event_code_ gain the new positive pairs,
    so new items leave the user's recommendations.
    """
    model._check_fitted()
    cfg = interactions or InteractionsConfig()
    known_item = events[S.ITEM_ID].astype(str).isin(model.item_ids_).to_numpy()
    events = events[known_item]
    new_users = pd.Index(pd.unique(events[S.USER_ID].astype(str))).difference(pd.Index(model.user_ids_), sort=False)
    if len(new_users):
        model.user_ids_ = np.concatenate([model.user_ids_, np.asarray(new_users, dtype=str)])
        n_new = len(new_users)
        model.user_factors_ = np.vstack([model.user_factors_, np.zeros((n_new, model.item_factors_.shape[1]), np.float32)])
        model.user_bias_ = np.concatenate([model.user_bias_, np.zeros(n_new, np.float32)])
    n_users, n_items = len(model.user_ids_), len(model.item_ids_)
    shape = (n_users, n_items)
    rows, cols, _ = _pairs(events, model.user_ids_, model.item_ids_)

    signal = _grow(model.signal_, n_users)
    if model.explicit_:
        ratings = rating_matrix(events, model.user_ids_, model.item_ids_)
        replaced = ratings.copy()
        replaced.data[:] = 1
        signal = signal - signal.multiply(replaced) + ratings
    else:
        signal = signal + _sparse(rows, cols, event_weights(events, cfg.event_weights), shape)
    model.signal_ = sp.csr_matrix(signal, dtype=np.float32)
    model.signal_.eliminate_zeros()
    model.signal_.sort_indices()

    positive = events[S.EVENT_TYPE].isin(cfg.positive_event_types).to_numpy()
    seen = _grow(model.seen_, n_users).maximum(_sparse(rows[positive], cols[positive], np.ones(positive.sum()), shape).sign())
    seen.sort_indices()
    # codes shifted by one so a pair whose code is 0 is still stored; seen's pattern then picks its pairs
    codes = pd.DataFrame({"r": rows, "c": cols, "v": event_codes(events[S.EVENT_TYPE]) + 1})
    codes = codes.groupby(["r", "c"], as_index=False)["v"].max()
    old = _grow(model.event_code_, n_users).astype(np.float32)
    old.data += 1
    merged = old.maximum(sp.csr_matrix((codes["v"], (codes["r"], codes["c"])), shape=shape, dtype=np.float32)).multiply(seen).tocsr()
    merged.sort_indices()
    model.seen_ = seen
    model.event_code_ = sp.csr_matrix(((merged.data - 1).astype(np.int8), seen.indices, seen.indptr), shape=shape)

    users = unique_ints(rows)
    with threadpool_limits(1, "blas"):  # many small products: BLAS threads only add overhead
        factors, biases = _solve_users(model, users)
    model.user_factors_[users], model.user_bias_[users] = factors, biases
    return model


def _solve_users(model: MFRecommender, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Factors and bias of each of these users from their whole signal, items frozen (see fold_in)."""
    X = np.hstack([model.item_factors_, np.ones((len(model.item_factors_), 1), np.float32)]).astype(np.float64)
    base = -(float(model.global_mean_) + model.item_bias_.astype(np.float64))  # target of a 0, minus the baseline
    perm = np.argsort(np.diff(model.signal_.indptr)[users], kind="stable")  # similar lengths share a chunk
    signal = model.signal_[users[perm]]
    counts = np.diff(signal.indptr)
    cols, values = signal.indices, signal.data.astype(np.float64)
    if model.explicit_:
        weights, rhs = np.ones_like(values), values + base[cols]
    else:
        alpha = model.config.negatives * counts / X.shape[0]
        gram, gram_rhs = X.T @ X, X.T @ base
        # the user's own items: target 1 with their confidence instead of target 0 with weight alpha
        entry_alpha, conf = np.repeat(alpha, counts), confidence(values)
        weights, rhs = conf - entry_alpha, conf * (1 + base[cols]) - entry_alpha * base[cols]
    penalty = model.config.fold_in_regularization * np.eye(X.shape[1])
    theta = np.empty((len(users), X.shape[1]))
    start = 0
    while start < len(users):
        size = SOLVE_CHUNK
        while size > 1 and size * counts[min(start + size, len(users)) - 1] > SOLVE_ENTRIES:
            size //= 2
        stop = min(start + size, len(users))
        lo, hi = signal.indptr[start], signal.indptr[stop]
        n = counts[start:stop]
        owner = np.repeat(np.arange(stop - start), n)
        slot = np.arange(hi - lo) - np.repeat(signal.indptr[start:stop] - lo, n)
        feats = np.zeros((stop - start, max(n.max(), 1), X.shape[1]))
        wt, rt = np.zeros(feats.shape[:2]), np.zeros(feats.shape[:2])
        feats[owner, slot], wt[owner, slot], rt[owner, slot] = X[cols[lo:hi]], weights[lo:hi], rhs[lo:hi]
        A = (feats * wt[..., None]).transpose(0, 2, 1) @ feats + penalty
        b = np.einsum("und,un->ud", feats, rt)
        if not model.explicit_:
            A += alpha[start:stop, None, None] * gram
            b += alpha[start:stop, None] * gram_rhs
        theta[perm[start:stop]] = np.linalg.solve(A, b[..., None])[..., 0]
        start = stop
    return theta[:, :-1].astype(np.float32), theta[:, -1].astype(np.float32)
