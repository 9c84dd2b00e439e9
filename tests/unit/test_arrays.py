import numpy as np
import pandas as pd
import pytest

from recmill.arrays import distinct_per_row, first_occurrences, unique_ints, unique_ints_inverse


@pytest.mark.parametrize("values", [[], [7], [3, 1, 3, 2, 1], [5, 5, 5], list(range(10, 0, -1))])
def test_unique_ints_is_np_unique(values):
    values = np.array(values, dtype=np.int64)
    assert unique_ints(values).tolist() == np.unique(values).tolist()
    uniq, inverse = unique_ints_inverse(values)
    expected, expected_inverse = np.unique(values, return_inverse=True)
    assert uniq.tolist() == expected.tolist()
    assert inverse.tolist() == expected_inverse.tolist()


def test_unique_ints_on_many_random_ids():
    values = np.random.default_rng(0).integers(0, 5_000, 20_000)
    uniq, inverse = unique_ints_inverse(values)
    assert np.array_equal(uniq, np.unique(values))
    assert np.array_equal(uniq[inverse], values)


def test_distinct_per_row_counts_by_hand():
    # row 0: (5, 1) twice and (-3, 1): 2 distinct pairs, 2 distinct baskets; row 1: none;
    # row 2: (5, 1) and (5, 2): 2 pairs, 1 basket
    rows = np.array([0, 0, 2, 0, 2])
    baskets = np.array([5, 5, 5, -3, 5])
    items = np.array([1, 1, 1, 1, 2])
    assert distinct_per_row(3, rows, baskets, items).tolist() == [2, 0, 2]
    assert distinct_per_row(3, rows, baskets).tolist() == [2, 0, 1]
    assert distinct_per_row(2, np.array([], dtype=np.int64), np.array([], dtype=np.int64)).tolist() == [0, 0]


def test_distinct_per_row_without_a_combined_code_is_the_same():
    # keys spanning more than 63 bits together take the column sort
    rng = np.random.default_rng(1)
    rows = rng.integers(0, 50, 5_000)
    wide = rng.integers(0, 40, 5_000) * 2**40 - 2**61
    other = rng.integers(0, 30, 5_000) * 2**30
    frame = pd.DataFrame({"row": rows, "a": wide, "b": other})
    expected = frame.drop_duplicates().groupby("row").size().reindex(range(60), fill_value=0)
    assert distinct_per_row(60, rows, wide, other).tolist() == expected.tolist()
    assert distinct_per_row(60, rows, other).tolist() == frame.groupby("row")["b"].nunique().reindex(range(60), fill_value=0).tolist()


def test_first_occurrences_by_hand():
    # rows 2 and 4 repeat rows 0 and 1; row 3 differs from row 0 in its second column only
    a = np.array([1, 2, 1, 1, 2])
    b = np.array([7, 7, 7, 8, 7])
    assert first_occurrences(a, b).tolist() == [True, True, False, True, False]
    assert first_occurrences(a).tolist() == [True, True, False, False, False]
    assert first_occurrences(np.array([], dtype=np.int64)).tolist() == []


@pytest.mark.parametrize("scale", [1, 2**40])  # a combined code, and past 63 bits the column sort
def test_first_occurrences_is_not_duplicated(scale):
    rng = np.random.default_rng(2)
    columns = [rng.integers(-5, 30, 4_000) * scale, rng.integers(0, 20, 4_000) * scale, rng.integers(0, 9, 4_000)]
    expected = ~pd.DataFrame({"a": columns[0], "b": columns[1], "c": columns[2]}).duplicated().to_numpy()
    assert np.array_equal(first_occurrences(*columns), expected)
