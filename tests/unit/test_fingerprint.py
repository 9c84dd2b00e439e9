"""The data fingerprint: the same values give the same one however they are held, and any
change of a value, a missing value or where one value ends gives another."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from recmill.data.tables import ID_DTYPE, Tables


def tables(users: list, values=(1.0, 2.0, 3.0)) -> Tables:
    return Tables(events=pd.DataFrame({"user_id": pd.Series(users, dtype=ID_DTYPE), "value": list(values)}))


def test_the_same_values_held_in_pieces_or_sliced_give_the_same_fingerprint():
    whole = tables(["ab", "c", None])
    pieces = pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([["ab"], ["c", None]], type=pa.large_string())))
    sliced = pd.Series(["x", "ab", "c", None], dtype=ID_DTYPE).iloc[1:].reset_index(drop=True)
    for column in (pieces, sliced):
        assert Tables(events=pd.DataFrame({"user_id": column, "value": [1.0, 2.0, 3.0]})).fingerprint() == whole.fingerprint()


def test_a_changed_value_missing_value_or_boundary_changes_it():
    base = tables(["ab", "c", ""]).fingerprint()
    assert tables(["ab", "d", ""]).fingerprint() != base
    assert tables(["ab", "c", None]).fingerprint() != base  # missing is not empty
    assert tables(["a", "bc", ""]).fingerprint() != base  # the same characters, cut elsewhere
    assert tables(["ab", "c", ""], values=(1.0, 2.0, 4.0)).fingerprint() != base
    assert tables(["ab", "c", ""]).fingerprint() == base
