"""Events -> one weighted user x item matrix, the input every collaborative model fits on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recmill import schema as S
from recmill.config import InteractionsConfig


def event_weights(events: pd.DataFrame, weights: dict[str, float]) -> np.ndarray:
    """Weight of each event: its type's weight, or the rating itself for rating events."""
    types = events[S.EVENT_TYPE].astype(str)
    w = types.map(weights).astype("float64").to_numpy()
    is_rating = (types == "rating").to_numpy()
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

    @classmethod
    def build(cls, events: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame, cfg: InteractionsConfig):
        user_ids = np.array(sorted(set(events[S.USER_ID].astype(str))), dtype=object)
        catalogue = set(events[S.ITEM_ID].astype(str)) | set(items[S.ITEM_ID].astype(str))
        item_ids = np.array(sorted(catalogue), dtype=object)
        rows = pd.Index(user_ids).get_indexer(events[S.USER_ID].astype(str))
        cols = pd.Index(item_ids).get_indexer(events[S.ITEM_ID].astype(str))
        shape = (len(user_ids), len(item_ids))

        def pairs(values: np.ndarray) -> sp.csr_matrix:
            m = sp.csr_matrix((values, (rows, cols)), shape=shape, dtype=np.float32)
            m.sum_duplicates()
            m.eliminate_zeros()
            return m

        matrix = pairs(event_weights(events, cfg.event_weights))
        positive = pairs(events[S.EVENT_TYPE].isin(cfg.positive_event_types).to_numpy(np.float32))
        positive.data[:] = 1.0
        return cls(user_ids, item_ids, matrix, positive, events, items, users, tuple(cfg.positive_event_types))

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)
