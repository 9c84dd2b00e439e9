"""Array helpers that the hot paths share.

np.unique on integers builds a hash table first (numpy 2.3 and later): on a million
mostly distinct ids it takes about a second, where a sort takes 20 ms.
"""

from __future__ import annotations

import math

import numpy as np


def unique_ints(values: np.ndarray) -> np.ndarray:
    """np.unique(values) for integers, by sorting."""
    ordered = np.sort(np.asarray(values), kind="stable")
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]] if len(ordered) else ordered


def unique_ints_inverse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(values, return_inverse=True) for integers, by sorting."""
    values = np.asarray(values)
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    first = np.r_[True, ordered[1:] != ordered[:-1]] if len(ordered) else np.zeros(0, dtype=bool)
    inverse = np.empty(len(values), dtype=np.int64)
    inverse[order] = np.cumsum(first) - 1
    return ordered[first], inverse


def distinct_per_row(n_rows: int, rows: np.ndarray, *keys: np.ndarray) -> np.ndarray:
    """How many distinct combinations of ``keys`` each of rows 0..n_rows-1 has (integers):
    a sort of one combined code where it fits 63 bits, else of the columns. pandas'
    drop_duplicates or groupby nunique hash every column instead: GBs at tens of millions
    of events."""
    columns = [np.asarray(rows, np.int64), *(np.asarray(k, np.int64) for k in keys)]
    if not len(columns[0]):
        return np.zeros(n_rows, np.int64)
    lows = [int(c.min()) for c in columns[1:]]
    spans = [int(c.max()) - low + 1 for c, low in zip(columns[1:], lows, strict=True)]
    if n_rows * math.prod(spans) < 2**63:
        combined = columns[0].copy()
        for column, low, span in zip(columns[1:], lows, spans, strict=True):
            combined *= span
            combined += column - low
        return np.bincount(unique_ints(combined) // math.prod(spans), minlength=n_rows)
    order = np.lexsort(columns[::-1])
    ordered = [c[order] for c in columns]
    first = np.zeros(len(order), dtype=bool)
    first[0] = True
    for column in ordered:
        first[1:] |= column[1:] != column[:-1]
    return np.bincount(ordered[0][first], minlength=n_rows)


def first_occurrences(*columns: np.ndarray) -> np.ndarray:
    """Mask of the rows whose combination of these integer columns no earlier row has
    (pandas' ~duplicated()): a stable sort of one combined code where it fits 63 bits, else
    of the columns, where pandas hashes a frame of them (GBs at tens of millions of rows)."""
    columns = [np.asarray(c) for c in columns]  # as they are: a 64-bit copy of each costs GBs at Instacart size
    first = np.zeros(len(columns[0]), dtype=bool)
    if not len(first):
        return first
    lows = [int(c.min()) for c in columns]
    spans = [int(c.max()) - low + 1 for c, low in zip(columns, lows, strict=True)]
    if math.prod(spans) < 2**63:
        combined = np.zeros(len(first), np.int64)
        for column, low, span in zip(columns, lows, spans, strict=True):
            combined *= span
            combined += column - low
        order = np.argsort(combined, kind="stable")
        ordered = combined[order]
        starts = np.r_[True, ordered[1:] != ordered[:-1]]
    else:
        order = np.lexsort(columns[::-1])  # stable too
        starts = np.zeros(len(order), dtype=bool)
        starts[0] = True
        for column in columns:
            ordered = column[order]
            starts[1:] |= ordered[1:] != ordered[:-1]
    first[order[starts]] = True
    return first
