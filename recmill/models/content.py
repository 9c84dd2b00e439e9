"""Content-based recommendations: TF-IDF over item text, so items without events are served too.

Each item is a weighted concatenation of per-field TF-IDF blocks (L2-normalised); a user's
profile is the recency-weighted mean of the vectors of the items in their history; similar
items are the top cosine neighbours, kept sparse.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from recmill import schema as S
from recmill.config import ContentConfig
from recmill.data.interactions import InteractionData
from recmill.errors import RecmillError
from recmill.models.base import SCORE_CELLS, VERBS, Recommender, text_array, top_k

# fields whose whole value is one term (a category, a brand), not a bag of words
WHOLE_VALUE_FIELDS = ("category", "brand")


def whole_value(text: str) -> list[str]:
    """The stripped value as a single term; nothing for an empty value."""
    text = text.strip()
    return [text] if text else []


def item_vectors(items: pd.DataFrame, item_ids: np.ndarray, config: ContentConfig):
    """TF-IDF vectors of the catalogue (rows in item_ids order), their terms and each term's field.

    Each field gets its own vectorizer, its block L2-normalised and scaled by the field's
    weight, so a long description cannot drown a short name; the rows are then L2-normalised.
    Catalogue items with no row in the items table get an empty vector.
    """
    looked = [f for f, w in config.fields.items() if w > 0]
    present = [f for f in looked if f in items.columns]
    table = items.set_index(items[S.ITEM_ID].astype(str)) if present else None
    blocks, terms, fields = [], [], []
    for field in present:
        texts = text_array(table[field].reindex(item_ids))
        if not (np.char.str_len(texts) > 0).any():
            continue
        if field in WHOLE_VALUE_FIELDS:
            vectorizer = TfidfVectorizer(analyzer=whole_value, max_features=config.max_features, min_df=config.min_df)
        else:
            vectorizer = TfidfVectorizer(stop_words="english", max_features=config.max_features, min_df=config.min_df)
        try:
            block = vectorizer.fit_transform(texts)
        except ValueError:  # every term pruned (stop words only, or rarer than min_df)
            continue
        blocks.append(block * config.fields[field])
        names = vectorizer.get_feature_names_out()
        terms.extend(names)
        fields.extend([field] * len(names))
    if not blocks:
        raise RecmillError(
            f"model 'content' needs item text: none of the items columns {looked} holds any "
            f"(the items table has columns {list(items.columns)})"
        )
    vectors = normalize(sp.hstack(blocks, format="csr")).astype(np.float32)
    vectors.sort_indices()
    return vectors, np.asarray(terms, dtype=str), np.asarray(fields, dtype=str)


_NEIGHBOURS: dict[str, sp.csr_matrix] = {}  # digest of (vectors, n) -> neighbours, the last one computed


def cached_neighbours(vectors: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """neighbours(), remembered for the same vectors: the item side depends on the items
    table alone, so a process fitting on several slices of the events (valid, test)
    computes it once. It is the costliest part of a fit on a large catalogue."""
    digest = hashlib.sha256(str(n).encode() + str(vectors.shape).encode())
    for part in (vectors.indptr, vectors.indices, vectors.data):
        digest.update(np.ascontiguousarray(part).tobytes())
    key = digest.hexdigest()
    if key not in _NEIGHBOURS:
        _NEIGHBOURS.clear()
        _NEIGHBOURS[key] = neighbours(vectors, n)
    return _NEIGHBOURS[key].copy()


def neighbours(vectors: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """Each item's n most cosine-similar other items, best first within each row; zero
    similarities are left out. Rows are done in chunks, so no dense items x items matrix
    is ever built."""
    n_items = vectors.shape[0]
    step = max(1, SCORE_CELLS // max(1, n_items))
    vectors_t = vectors.T.tocsr()
    cols, scores, counts = [], [], []
    for start in range(0, n_items, step):
        chunk = np.arange(start, min(start + step, n_items))
        sims = (vectors[chunk] @ vectors_t).toarray()
        sims[np.arange(len(chunk)), chunk] = -np.inf  # itself
        top, top_scores = top_k(sims, n)
        keep = top_scores > 0
        cols.append(top[keep])
        scores.append(np.minimum(top_scores[keep], 1.0))  # rounding can exceed 1 for equal texts
        counts.append(keep.sum(axis=1))
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(counts))])
    return sp.csr_matrix((np.concatenate(scores), np.concatenate(cols), indptr), shape=(n_items, n_items))


def history_weights(data: InteractionData, half_life_days: float | None) -> tuple[sp.csr_matrix, np.ndarray]:
    """Per (user, item) of data.matrix: its summed event weight, decayed by the age of the
    pair's latest event (counted from the latest event of all), and its strongest event
    type (for the reasons' verbs)."""
    matrix = data.matrix.copy().tocsr().astype(np.float64)
    matrix.sort_indices()
    codes, latest = data.pair_events(matrix)
    if half_life_days is not None:
        age = data.events[S.TIMESTAMP].max() - pd.Series(latest)
        matrix.data *= 0.5 ** (age.dt.total_seconds().fillna(0).to_numpy() / 86400 / half_life_days)
    return matrix, codes


class ContentRecommender(Recommender):
    name = "content"
    Config = ContentConfig
    state = ("item_vectors_", "neighbours_", "history_", "history_codes_", "terms_", "term_fields_")
    has_similar_items = True
    folds_in = True

    def _fit(self, data: InteractionData) -> None:
        self.item_vectors_, self.terms_, self.term_fields_ = item_vectors(data.items, self.item_ids_, self.config)
        self.neighbours_ = cached_neighbours(self.item_vectors_, self.config.neighbours)
        self.history_, self.history_codes_ = history_weights(data, self.config.recency_half_life_days)

    def _user_state(self, data: InteractionData) -> dict[str, object]:
        """history_ of data's users, and history_codes_ as a matrix of its pattern (see refresh_users)."""
        history, codes = history_weights(data, self.config.recency_half_life_days)
        return {"history_": history, "history_codes_": sp.csr_matrix((codes, history.indices, history.indptr), shape=history.shape)}

    def refresh_users(self, data: InteractionData) -> ContentRecommender:
        """As the base class; history_codes_, kept flat in history_'s entry order, is replaced
        as a matrix of history_'s pattern and flattened back."""
        self.history_codes_ = sp.csr_matrix((self.history_codes_, self.history_.indices, self.history_.indptr), shape=self.history_.shape)
        try:
            super().refresh_users(data)
        finally:
            self.history_codes_ = self.history_codes_.data if sp.issparse(self.history_codes_) else self.history_codes_
        return self

    def _profiles(self, rows: np.ndarray) -> sp.csr_matrix:
        """The weighted mean item vector of each user's history."""
        weights = self.history_[rows]
        totals = np.asarray(weights.sum(axis=1)).ravel()
        weights = sp.diags(1 / np.where(totals > 0, totals, 1)) @ weights
        return (weights @ self.item_vectors_).tocsr()

    def _score(self, rows: np.ndarray) -> np.ndarray:
        # a profile shares a term (its category, say) with many items, so the scores are
        # nearly dense: sparse items x dense profiles is several times faster than sparse x
        # sparse; float32 (the vectors' own precision) and a row per user, as top_k reads them
        profiles = self._profiles(rows).toarray().astype(np.float32)
        return np.ascontiguousarray((self.item_vectors_ @ profiles.T).T)

    def _similar(self, items: np.ndarray, k: int):
        # rows are stored best first, so the first k of each are its top k
        nb = self.neighbours_
        starts, counts = nb.indptr[items], np.minimum(np.diff(nb.indptr)[items], k)
        top = np.zeros((len(items), k), dtype=np.int64)
        scores = np.full((len(items), k), -np.inf)
        at = np.arange(k) < counts[:, None]
        positions = (starts[:, None] + np.arange(k))[at]
        top[at], scores[at] = nb.indices[positions], nb.data[positions]
        return top, scores

    def _reasons(self, row: int, items: np.ndarray) -> list[str]:
        """The terms the item shares with the user's profile, largest contribution first:
        a shared category or brand is named with the history item that carries it most;
        shared words are quoted."""
        vectors = self.item_vectors_
        start = self.history_.indptr[row]
        owned = self.history_.indices[start : self.history_.indptr[row + 1]]
        profile, carriers = self._profile_and_carriers(row)
        out = []
        for col in items:
            terms = vectors.indices[vectors.indptr[col] : vectors.indptr[col + 1]]
            products = profile[terms] * vectors.data[vectors.indptr[col] : vectors.indptr[col + 1]]
            order = np.lexsort((terms, -products))
            shared = terms[order][products[order] > 0]
            if len(shared) == 0:
                out.append(self._popular_reason(col))
                continue
            top = shared[0]
            verb = VERBS[int(self.history_codes_[start + carriers[top]])]
            if self.term_fields_[top] in WHOLE_VALUE_FIELDS:
                out.append(f"more from {self.terms_[top]}, like {self.item_names_[owned[carriers[top]]]} you {verb}")
                continue
            words = self.terms_[shared][~np.isin(self.term_fields_[shared], WHOLE_VALUE_FIELDS)]
            quoted = ", ".join(f"'{w}'" for w in list(dict.fromkeys(words))[:2])  # a word may be in several fields
            out.append(f"matches {quoted} in what you {verb}")
        return out

    def _profile_and_carriers(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """The user's profile up to its scale (_profiles of one row times its total weight,
        dense: the reasons only compare its terms) and, per term, the position in their
        history of the item that adds most of it (ties to the lower item column; -1 for terms
        the profile lacks). Read off the CSR arrays: this runs once per user served, where
        building sparse matrices costs more than the arithmetic."""
        history, vectors = self.history_, self.item_vectors_
        span = slice(history.indptr[row], history.indptr[row + 1])
        owned, weights = history.indices[span], history.data[span]
        lengths = vectors.indptr[owned + 1] - vectors.indptr[owned]
        at = np.repeat(vectors.indptr[owned] - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        position, terms = np.repeat(np.arange(len(owned)), lengths), vectors.indices[at]
        carried = weights[position] * vectors.data[at]
        order = np.lexsort((owned[position], -carried, terms))
        first = order[np.r_[True, np.diff(terms[order]) != 0]] if len(order) else order
        carriers = np.full(vectors.shape[1], -1)
        carriers[terms[first]] = position[first]
        return np.bincount(terms, carried, minlength=vectors.shape[1]), carriers
