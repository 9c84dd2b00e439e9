"""Item2vec (Barkan and Koenigstein 2016): gensim Word2Vec over the items of each user's or
each order's history. Lists over a catalogue up to exact_index_max_items come from dense
scores against every item vector; above it, and for similar items, from a FAISS index.

Word2vec vectors share one large common direction (cosines of ~0.9 between any two items),
so the mean of a user's items points at the catalogue's centre and the nearest items to
it are rare ones; the vectors are centred before they are normalised (NDCG@10 on the
synthetic shop 0.001 -> 0.015).

A user's vector is the (optionally recency-weighted) mean of the unit vectors of the items
they have; their recommendations are the items nearest to it. Items that never made it
into the vocabulary have no vector and are never recommended by that path; users with no
history item that has a vector get the popularity list.
"""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from itertools import chain
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recmill import schema as S
from recmill.arrays import first_occurrences
from recmill.config import Item2VecConfig
from recmill.data.interactions import InteractionData, factorized, index_of
from recmill.errors import ModelSkipped
from recmill.models.base import Recommender, dot_scores, mask_seen, top_k, unit_rows

# Views and carts carry taste too: on the synthetic shop, user sequences of all events give
# NDCG@10 0.015 against 0.010 with purchases and carts, 0.009 with purchases only
SEQUENCE_EVENTS = ("view", "cart", "purchase", "rating")


def sequence_codes(events: pd.DataFrame, by: str, event_types=SEQUENCE_EVENTS, data: InteractionData | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The items of each user's (by='user') or each order's (by='order') events in time
    order, as codes: every sequence's item codes one after the other, each sequence's
    length, and the item id of each code. ``data``: the events' InteractionData, whose
    codes of the users and items are read instead of coding the ids again (seconds a
    column at 40M events).

    An item counts once per session: its order, or the user's day for events without one
    (views, or data with no orders). 'user' strings a user's sessions together.
    """
    chosen = events[S.EVENT_TYPE].isin(event_types).to_numpy(bool)
    # codes in the ids' sorted order sort like the ids themselves, and far faster than
    # strings; 32-bit where they fit, and no copy of the events' other columns: at Instacart
    # size each 64-bit column of the events is a quarter of a GB
    if data is None:
        users, _ = factorized(events.loc[chosen, S.USER_ID])
        items, item_ids = factorized(events.loc[chosen, S.ITEM_ID])
    else:
        (users, items), item_ids = data.event_cells(chosen), data.item_ids
    users, items = users.astype(np.int32), items.astype(np.int32)
    times = events[S.TIMESTAMP].to_numpy("datetime64[ns]").view(np.int64)[chosen]
    order = (pd.factorize(events[S.ORDER_ID])[0] if S.ORDER_ID in events else np.full(len(events), -1))[chosen].astype(np.int32)  # NA -> -1
    day = (times // (86_400 * 10**9)).astype(np.int32)  # floored, as datetime64[D]
    day -= day.min() if len(day) else 0
    session = np.where(order >= 0, order, order.max(initial=-1) + 1 + day)  # an order, or the user's day: codes past the orders'
    del order, day
    # numpy sorts and hashes the integer columns: at Instacart size pandas' multi-column
    # sort and drop_duplicates took nearly all of item2vec's fit
    ordered = np.lexsort((items, times, users))  # stable: equal events keep their order
    del times
    users, session, items = users[ordered], session[ordered], items[ordered]
    del ordered
    once = first_occurrences(users, session, items)
    users, session, items = users[once], session[once], items[once]
    if by == "user":
        lengths = np.diff(np.flatnonzero(np.r_[True, users[1:] != users[:-1], True])) if len(users) else np.zeros(0, np.int64)
        return items, lengths, item_ids
    # each session's items together, sessions in the order of their first item
    sequence = pd.DataFrame({"user": users, "session": session}).groupby(["user", "session"], sort=False).ngroup().to_numpy()
    grouped = np.argsort(sequence, kind="stable")
    return items[grouped], np.bincount(sequence, minlength=sequence.max() + 1 if len(sequence) else 0), item_ids


def item_sequences(events: pd.DataFrame, by: str, event_types=SEQUENCE_EVENTS) -> list[list[str]]:
    """The item ids of every sequence of sequence_codes."""
    items, lengths, item_ids = sequence_codes(events, by, event_types)
    return [part.tolist() for part in np.split(item_ids[items], np.cumsum(lengths)[:-1])]


def within_budget(lengths: np.ndarray, max_tokens: int | None, seed: int) -> np.ndarray:
    """Positions of the sequences to keep, in order: a seeded sample of whole sequences
    holding at most max_tokens items (all of them when they fit): word2vec's time grows
    with the items it reads."""
    lengths = np.asarray(lengths)
    if max_tokens is None or lengths.sum() <= max_tokens:
        return np.arange(len(lengths))
    order = np.random.default_rng(seed).permutation(len(lengths))
    return np.sort(order[np.cumsum(lengths[order]) <= max_tokens])


@contextmanager
def faiss_threads(n: int):
    """FAISS on n OpenMP threads for a while. One makes index building reproducible, and
    keeps searches fast on a busy machine: one user on a 50,000-item exact index took 16 ms
    (p50) with OpenMP's two threads against 3 to 4 ms with one."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield faiss
    finally:
        faiss.omp_set_num_threads(before)


def build_index(vectors: np.ndarray, config: Item2VecConfig, seed: int):
    """Inner-product FAISS index over unit vectors: exact up to config.exact_index_max_items."""
    n, dim = vectors.shape
    with faiss_threads(1) as faiss:
        if n <= config.exact_index_max_items:
            index = faiss.IndexFlatIP(dim)
        elif config.approximate_index == "hnsw":
            index = faiss.IndexHNSWFlat(dim, config.hnsw_neighbours, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = config.hnsw_search_depth
        else:
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, min(config.ivf_lists, n), faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = seed
            index.train(vectors)
            index.nprobe = min(config.ivf_probes, index.nlist)
        index.add(vectors)
    return index


def best(cols: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k best candidates, best first (ties by column number); -inf pads."""
    order = np.lexsort((cols, -scores), axis=1)[:, :k]
    cols, scores = np.take_along_axis(cols, order, axis=1), np.take_along_axis(scores, order, axis=1)
    pad = k - cols.shape[1]
    if pad > 0:
        cols = np.pad(cols, ((0, 0), (0, pad)))
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
    return cols, scores


class Item2VecRecommender(Recommender):
    name = "item2vec"
    Config = Item2VecConfig
    state = ("placed_", "vectors_", "weights_")
    folds_in = True
    has_similar_items = True

    def _fit(self, data: InteractionData) -> None:
        from gensim.models import Word2Vec

        c = self.config
        items, lengths, item_ids = sequence_codes(data.events, c.sequence, data=data)
        starts = np.cumsum(lengths) - lengths
        long = np.flatnonzero(lengths >= 2)
        # data too thin for word2vec: the run goes on without this model
        if len(long) < c.min_sequences:
            raise ModelSkipped(f"item2vec needs at least {c.min_sequences} sequences with 2 or more items, found {len(long)}")
        # only the sampled sequences become lists of strings: at Instacart size all of them take GBs
        kept = long[within_budget(lengths[long], c.max_tokens, self.seed)]
        sequences = [item_ids[items[starts[i] : starts[i] + lengths[i]]].tolist() for i in kept]
        if max(Counter(chain.from_iterable(sequences)).values()) < c.min_count:
            raise ModelSkipped(f"item2vec: no item appears at least min_count={c.min_count} times")
        # one worker: gensim's threads make the vectors depend on scheduling
        w2v = Word2Vec(
            sequences, vector_size=c.vector_size, window=c.window, min_count=c.min_count, sg=int(c.sg),
            negative=c.negative, hs=int(c.negative == 0), epochs=c.epochs, seed=self.seed, workers=1,
        )
        cols = pd.Index(self.item_ids_).get_indexer(pd.Index(w2v.wv.index_to_key))
        order = np.argsort(cols)
        self.placed_ = cols[order].astype(np.int64)
        vectors = w2v.wv.vectors[order]
        self.vectors_ = unit_rows(vectors - vectors.mean(axis=0)).astype(np.float32)
        self.weights_ = self._history_weights(data)
        self._build()

    def _user_state(self, data: InteractionData) -> dict[str, object]:
        return {"weights_": self._history_weights(data)}

    def _history_weights(self, data: InteractionData) -> sp.csr_matrix:
        """seen_ with each pair's weight in the user's vector: 1, or halving per half-life
        between the user's last event with the item and their last event with any item."""
        half_life = self.config.recency_half_life_days
        if half_life is None:
            return self.seen_.astype(np.float64)
        ev = data.events.loc[data.events[S.EVENT_TYPE].isin(data.positive_event_types).to_numpy(bool), [S.USER_ID, S.ITEM_ID, S.TIMESTAMP]]
        frame = pd.DataFrame(
            {"r": index_of(self.user_ids_, ev[S.USER_ID]),
             "c": index_of(self.item_ids_, ev[S.ITEM_ID]),
             "t": ev[S.TIMESTAMP].to_numpy()}
        )
        last = frame.groupby(["r", "c"])["t"].max()
        user_last = frame.groupby("r")["t"].max().reindex(last.index.get_level_values("r")).to_numpy()
        age = (user_last - last) / pd.Timedelta(days=1)
        seen = self.seen_.tocoo()
        age = age.reindex(pd.MultiIndex.from_arrays([seen.row, seen.col])).to_numpy(np.float64)
        return sp.csr_matrix((0.5 ** (age / half_life), self.seen_.indices, self.seen_.indptr), shape=self.seen_.shape)

    def _build(self) -> None:
        """What follows from the saved state: each column's vector slot and the index.

        The index holds [vector, w * log(1 + popularity)]: a user query [profile, 1] scores
        cosine + w * log-popularity in one exact search, and a similar-items query
        [vector, 0] scores the cosine alone.
        """
        self.slot_ = np.full(len(self.item_ids_), -1, dtype=np.int64)
        self.slot_[self.placed_] = np.arange(len(self.placed_))
        self.all_vectors_ = np.zeros((len(self.item_ids_), self.vectors_.shape[1]), dtype=np.float32)
        self.all_vectors_[self.placed_] = self.vectors_
        self.boost_ = (self.config.popularity_weight * np.log1p(self.popularity_)).astype(np.float32)
        self.placed_boost_ = np.full(len(self.item_ids_), -np.inf, dtype=np.float32)  # an item without a vector: never listed
        self.placed_boost_[self.placed_] = self.boost_[self.placed_]
        augmented = np.hstack([self.vectors_, self.boost_[self.placed_, None]])
        self.index_ = build_index(np.ascontiguousarray(augmented), self.config, self.seed)

    @staticmethod
    def _query(vectors: np.ndarray, boost: float) -> np.ndarray:
        return np.ascontiguousarray(np.hstack([vectors, np.full((len(vectors), 1), boost, dtype=np.float32)]))

    def _profiles(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unit mean vectors of these users' histories, and which users have one."""
        weights = self.weights_[rows]
        # over the history items only: the whole vector table would be cast for every batch
        history = weights.indices
        weights = sp.csr_matrix((weights.data, np.arange(len(history)), weights.indptr), shape=(len(rows), len(history)))
        placed = weights @ (self.slot_[history] >= 0).astype(np.float64) > 0
        profiles = weights @ self.all_vectors_[history].astype(np.float64)
        return unit_rows(profiles).astype(np.float32), placed

    def _score(self, rows: np.ndarray) -> np.ndarray:
        profiles, placed = self._profiles(rows)
        scores = np.full((len(rows), len(self.item_ids_)), -np.inf)
        scores[:, self.placed_] = dot_scores(profiles, self.vectors_) + self.boost_[self.placed_]
        scores[~placed] = self.popularity_
        return scores

    def _top(self, rows: np.ndarray, k: int, exclude_seen: bool) -> tuple[np.ndarray, np.ndarray]:
        profiles, placed = self._profiles(rows)
        seen = self.seen_[rows]
        extra = int(np.diff(seen.indptr).max(initial=0)) if exclude_seen else 0
        top = np.zeros((len(rows), k), dtype=np.int64)
        scores = np.full((len(rows), k), -np.inf)
        if placed.any() and len(self.placed_) <= self.config.exact_index_max_items:
            # exact: dense scores and one top-k, not the index's search, whose per-query heap
            # must also hold the user's seen items (k + hundreds at Instacart size)
            dense = dot_scores(profiles[placed], self.all_vectors_) + self.placed_boost_
            if exclude_seen:
                mask_seen(dense, seen[placed])
            cols, found = top_k(dense, k)
            top[placed], scores[placed] = best(cols, found.astype(np.float64), k)
        elif placed.any():
            with faiss_threads(1):
                found, slots = self.index_.search(self._query(profiles[placed], 1.0), min(k + extra, self.index_.ntotal))
            cols = np.where(slots >= 0, self.placed_[slots], -1)
            top[placed], scores[placed] = self._unseen(seen[placed], cols, np.where(slots >= 0, found, -np.inf), k, exclude_seen)
        if not placed.all():
            cols = np.tile(self.popular_[: k + extra], (int((~placed).sum()), 1))
            top[~placed], scores[~placed] = self._unseen(seen[~placed], cols, self.popularity_[cols], k, exclude_seen)
        return top, scores

    def _unseen(self, seen: sp.csr_matrix, cols: np.ndarray, scores: np.ndarray, k: int, exclude_seen: bool):
        """The k best candidates of each row, leaving out the row's seen items when asked."""
        scores = scores.astype(np.float64)
        if exclude_seen:
            n = len(self.item_ids_)
            seen_keys = np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr)) * n + seen.indices
            scores[np.isin(np.arange(len(cols))[:, None] * n + cols, seen_keys)] = -np.inf
        return best(cols, scores, k)

    def _similar(self, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        slots = self.slot_[items]
        has = slots >= 0
        top = np.zeros((len(items), k), dtype=np.int64)
        scores = np.full((len(items), k), -np.inf)
        if has.any():
            with faiss_threads(1):
                found, near = self.index_.search(self._query(self.vectors_[slots[has]], 0.0), min(k + 1, self.index_.ntotal))
            cols = np.where(near >= 0, self.placed_[near], -1)
            found = np.where((near >= 0) & (cols != items[has, None]), found, -np.inf)
            top[has], scores[has] = best(cols, found.astype(np.float64), k)
        return top, scores

    def _reasons(self, row: int, items: np.ndarray) -> list[str]:
        """Name the user's history items whose vectors are closest to each recommendation."""
        history = self.history(row)
        history = history[self.slot_[history] >= 0]
        if len(history) == 0:
            return super()._reasons(row, items)
        return self._nearest_history_reasons(row, items, history, self.all_vectors_[items] @ self.all_vectors_[history].T)

    def _load_extra(self, path: Path) -> None:
        self._build()
