"""Events -> one weighted user x item matrix, the input every collaborative model fits on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recmill import schema as S


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
    ``user_ids``/``item_ids`` map row/column numbers back to the string ids. The catalogue
    is every item in the items table or in the events.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    matrix: sp.csr_matrix
    events: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame

    @classmethod
    def build(cls, events: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame, weights: dict[str, float]):
        user_ids = np.array(sorted(set(events[S.USER_ID].astype(str))), dtype=object)
        catalogue = set(events[S.ITEM_ID].astype(str)) | set(items[S.ITEM_ID].astype(str))
        item_ids = np.array(sorted(catalogue), dtype=object)
        rows = pd.Index(user_ids).get_indexer(events[S.USER_ID].astype(str))
        cols = pd.Index(item_ids).get_indexer(events[S.ITEM_ID].astype(str))
        w = event_weights(events, weights)
        matrix = sp.csr_matrix((w, (rows, cols)), shape=(len(user_ids), len(item_ids)), dtype=np.float32)
        matrix.sum_duplicates()
        matrix.eliminate_zeros()
        return cls(user_ids, item_ids, matrix, events, items, users)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)
