"""The pieces a refresh is made of, on hand-made values: replacing users' rows of a
per-user attribute, and telling new events from known ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from pipelines.refresh import not_in
from recmill.models.base import with_rows


def test_with_rows_replaces_and_appends_sparse_rows_keeping_stored_zeros():
    old = sp.csr_matrix(np.array([[1, 0, 2], [0, 3, 0], [4, 0, 0]], dtype=np.int8))
    new = sp.csr_matrix((np.array([0, 7], dtype=np.int8), np.array([0, 2]), np.array([0, 1, 2])), shape=(2, 3))  # a stored 0
    out = with_rows(old, np.array([1, 3]), new, 4)
    np.testing.assert_array_equal(out.toarray(), [[1, 0, 2], [0, 0, 0], [4, 0, 0], [0, 0, 7]])
    assert out.dtype == np.int8 and out.nnz == 5  # row 1 holds its stored 0
    np.testing.assert_array_equal(out.indptr, [0, 2, 3, 4, 5])


def test_with_rows_replaces_and_appends_dense_rows():
    old = np.array([[1.0, 1.0], [2.0, 2.0]], dtype=np.float32)
    out = with_rows(old, np.array([0, 2, 3]), np.array([[5, 5], [6, 6], [7, 7]]), 4)
    np.testing.assert_array_equal(out, [[5, 5], [2, 2], [6, 6], [7, 7]])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(with_rows(np.array([1.0, 2.0]), np.array([2]), np.array([9.0]), 3), [1.0, 2.0, 9.0])


def test_not_in_keeps_the_rows_no_known_frame_holds_once():
    def events(rows):
        frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
        return frame.assign(timestamp=pd.to_datetime(frame["timestamp"]), event_type="purchase", value=1.0, order_id=pd.NA)

    arrived = events([("u1", "i1", "2026-01-01"), ("u1", "i2", "2026-01-02"), ("u1", "i2", "2026-01-02"), ("u2", "i1", "2026-01-03")])
    canonical, folded = events([("u1", "i1", "2026-01-01")]), events([("u2", "i1", "2026-01-03")])
    fresh = not_in(arrived, canonical, folded)
    assert list(zip(fresh["user_id"], fresh["item_id"])) == [("u1", "i2")]
    assert len(not_in(arrived, canonical.iloc[:0])) == 3  # duplicates once, nothing known
