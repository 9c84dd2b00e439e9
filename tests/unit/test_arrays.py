import numpy as np
import pytest

from recmill.arrays import unique_ints, unique_ints_inverse


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
