"""Events -> one weighted user x item matrix, the input every collaborative model fits on."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recmill import schema as S
from recmill.config import InteractionsConfig
from recmill.data.tables import ID_DTYPE


def factorized(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(code of each value, the sorted distinct values as str): pandas factorizes Arrow-backed
    strings without making a Python object per row, which matters at tens of millions of rows."""
    if values.dtype != ID_DTYPE:
        values = values.astype(ID_DTYPE)  # missing stays missing (code -1)
    codes, uniques = pd.factorize(values, sort=True)
    return codes, np.asarray(uniques, dtype=object)


def index_of(vocabulary, values: pd.Series) -> np.ndarray:
    """Position of each value in ``vocabulary`` (-1 when absent): the lookup is done once
    per distinct value, not once per row."""
    codes, uniques = factorized(pd.Series(values))
    positions = np.append(pd.Index(vocabulary).get_indexer(uniques), -1)  # code -1 (missing) takes the -1
    return positions[codes]


EVENT_CODES = {"view": 1, "cart": 2, "purchase": 3, "rating": 4}  # a stronger event, a higher code


def event_codes(event_types: pd.Series) -> np.ndarray:
    """EVENT_CODES of each event type (0 for an unknown one), looked up once per distinct type."""
    return coded_events(*factorized(event_types))


def coded_events(codes: np.ndarray, names: np.ndarray) -> np.ndarray:
    """event_codes of factorized event types."""
    return np.array([EVENT_CODES.get(n, 0) for n in names] + [0], dtype=np.int8)[codes]


def event_weights(events: pd.DataFrame, weights: dict[str, float]) -> np.ndarray:
    """Weight of each event: its type's weight, or the rating itself for rating events."""
    codes, types = factorized(events[S.EVENT_TYPE])  # code -1, a missing type, takes the appended last entry
    w = np.array([weights.get(t, np.nan) for t in types] + [np.nan], dtype=np.float64)[codes]
    is_rating = np.append(types == "rating", False)[codes]
    w[is_rating] = events[S.VALUE].to_numpy(dtype="float64")[is_rating]
    return np.nan_to_num(w, nan=0.0)


@dataclass
class InteractionData:
    """Events indexed by integer ids, plus the item and user tables.

    ``matrix`` is CSR users x items holding the summed event weights of each pair;
    ``positive`` has the same shape and marks the pairs where the user has the item (an
    event of ``positive_event_types``); ``user_ids``/``item_ids`` map row/column numbers
    back to the string ids. The catalogue is every item in the items table or the events.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    matrix: sp.csr_matrix
    positive: sp.csr_matrix
    events: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    positive_event_types: tuple[str, ...]
    # each event's pair key (row * n_items + col) and event code, kept from build: coding
    # the ids again, for each model that reads the events, costs seconds a column at 40M
    event_keys: tuple[np.ndarray, np.ndarray] = field(repr=False)

    @classmethod
    def build(cls, events: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame, cfg: InteractionsConfig):
        rows, user_ids = factorized(events[S.USER_ID])
        item_codes, event_items = factorized(events[S.ITEM_ID])
        item_ids = np.union1d(event_items, items[S.ITEM_ID].dropna().astype(str).to_numpy(dtype=object))
        cols = np.searchsorted(item_ids, event_items)[item_codes]
        shape = (len(user_ids), len(item_ids))

        def pairs(values: np.ndarray) -> sp.csr_matrix:
            m = sp.csr_matrix((values, (rows, cols)), shape=shape, dtype=np.float32)
            m.sum_duplicates()
            m.eliminate_zeros()
            return m

        matrix = pairs(event_weights(events, cfg.event_weights))
        type_codes, types = factorized(events[S.EVENT_TYPE])
        positive = pairs(np.append(np.isin(types, list(cfg.positive_event_types)), False)[type_codes].astype(np.float32))
        positive.data[:] = 1.0
        keys = rows.astype(np.int64, copy=False) * len(item_ids) + cols
        return cls(user_ids, item_ids, matrix, positive, events, items, users, tuple(cfg.positive_event_types), (keys, coded_events(type_codes, types)))

    def catalogue(self) -> pd.DataFrame:
        """The items table with a bare row for each catalogue item it lacks (seen in events only):
        data built from a slice of these events with it keeps the same item columns."""
        listed = set(self.items[S.ITEM_ID].dropna().astype(str))
        missing = [i for i in self.item_ids if i not in listed]
        return pd.concat([self.items, pd.DataFrame({S.ITEM_ID: missing})], ignore_index=True) if missing else self.items

    @cached_property
    def _pair_events(self) -> pd.DataFrame:
        """Per (user, item) pair with an event, by its key row * n_items + col (sorted): the
        strongest event code ``v`` and the latest event time ``t``. Built once per data and
        shared by the models that fit on it: a pass over every event, costly at 40M."""
        key, codes = self.event_keys
        # a stable sort then maxima over each key's run: a third of pandas' groupby at 40M
        # events, and quick on events already in user order (a merge sort meets runs)
        if not len(key):
            return pd.DataFrame({"t": np.zeros(0, "datetime64[ns]"), "v": np.zeros(0, np.int8)}, index=pd.Index(key, name="key"))
        order = np.argsort(key, kind="stable")
        key = key[order]
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        times = self.events[S.TIMESTAMP].to_numpy("datetime64[ns]").view(np.int64)[order]
        latest, strongest = np.maximum.reduceat(times, starts), np.maximum.reduceat(codes[order], starts)
        return pd.DataFrame({"t": latest.view("datetime64[ns]"), "v": strongest}, index=pd.Index(key[starts], name="key"))

    def event_cells(self, at: slice | np.ndarray = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """The row (user) and column (item) of each event (or of those ``at`` picks), in the events' order."""
        return np.divmod(self.event_keys[0][at], max(self.n_items, 1))

    def pair_events(self, pattern: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        """For each stored entry of ``pattern`` (users x items, in its storage order): the
        strongest event code of the pair (0 without an event) and its latest event time (NaT)."""
        pattern = pattern.tocsr()
        rows = np.repeat(np.arange(pattern.shape[0], dtype=np.int64), np.diff(pattern.indptr))
        wanted = rows * self.n_items + pattern.indices
        pairs = self._pair_events
        if not len(pairs):
            return np.zeros(len(wanted), np.int8), np.full(len(wanted), np.datetime64("NaT", "ns"))
        keys = pairs.index.to_numpy()
        at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        found = keys[at] == wanted
        codes = np.where(found, pairs["v"].to_numpy()[at], 0).astype(np.int8)
        latest = np.where(found, pairs["t"].to_numpy()[at], np.datetime64("NaT", "ns"))
        return codes, latest

    def over_items(self, item_ids: np.ndarray) -> InteractionData:
        """The data of the events of ``item_ids`` (sorted, as every built data's item_ids)
        over exactly those item columns: what over_items builds from these events, taken
        from this data's codes and matrices instead of coding 40M ids again. A pair's sums
        are its own events', so the kept pairs carry over as they are."""
        new_col = pd.Index(item_ids).get_indexer(self.item_ids)  # each column's new column, or -1
        rows, cols = self.event_cells()
        cols = new_col[cols]
        keep = cols >= 0
        rows, cols = rows[keep], cols[keep]
        present = np.zeros(self.n_users, bool)
        present[rows] = True  # the users left with an event
        new_row = np.cumsum(present) - 1
        moved = np.flatnonzero(new_col >= 0)
        select = sp.csr_matrix((np.ones(len(moved), np.float32), (moved, new_col[moved])), shape=(self.n_items, len(item_ids)))

        def carried(m: sp.csr_matrix) -> sp.csr_matrix:
            out = (m[present] @ select).tocsr()  # each kept value times one: exact
            out.sort_indices()
            return out

        catalogue = self.items.drop_duplicates(S.ITEM_ID).set_index(S.ITEM_ID).reindex(pd.Index(item_ids, name=S.ITEM_ID)).reset_index()
        return InteractionData(
            self.user_ids[present], np.asarray(item_ids, dtype=object), carried(self.matrix), carried(self.positive), self.events[keep],
            catalogue, self.users, self.positive_event_types, (new_row[rows] * len(item_ids) + cols, self.event_keys[1][keep]),
        )

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)


def over_items(events: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame, item_ids: np.ndarray, cfg: InteractionsConfig) -> InteractionData:
    """The events of ``item_ids`` as data over exactly those item columns, in that order:
    what a fitted model's refresh_users takes."""
    catalogue = items.drop_duplicates(S.ITEM_ID).set_index(S.ITEM_ID).reindex(pd.Index(item_ids, name=S.ITEM_ID)).reset_index()
    known = events[events[S.ITEM_ID].isin(item_ids).to_numpy(bool)]
    return InteractionData.build(known, catalogue, users, cfg)


def basket_ids(events: pd.DataFrame) -> pd.Series:
    """Each event's basket: its order_id, or 'day <date>' for an event without one (as
    recmill.features groups them), so rating data has one basket per active day."""
    ids = events[S.ORDER_ID].astype(ID_DTYPE) if S.ORDER_ID in events else pd.Series(pd.NA, index=events.index, dtype=ID_DTYPE)
    missing = ids.isna().to_numpy()
    if missing.any():  # the day only where it is needed: strftime costs a Python string per row
        ids = ids.copy()
        ids[missing] = ("day " + events.loc[missing, S.TIMESTAMP].dt.strftime("%Y-%m-%d")).astype(ID_DTYPE)
    return ids
