"""Temporal train / valid / test split of the events."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recmill import schema as S
from recmill.config import SplitConfig

SPLITS = ("train", "valid", "test")


def _tail_sizes(n: np.ndarray, fraction: float | None, count: int | None) -> np.ndarray:
    """How many of each user's last events to take: last N, or the last fraction rounded to
    the nearest whole (halves up), at least one."""
    if count is not None:
        return np.minimum(count, n)
    return np.maximum(1, np.floor(n * fraction + 0.5).astype(int))


def temporal_split(events: pd.DataFrame, cfg: SplitConfig) -> dict[str, pd.DataFrame]:
    """Split events in time. Returns {'train', 'valid', 'test'} frames.

    per_user: each user's events sorted by (timestamp, item_id); the last fraction (or
    last N) is test and the same share of what remains before it is valid. Users with
    fewer than ``min_user_events`` events stay wholly in train.
    global_time: events before valid_start are train, then valid up to test_start, then test.
    """
    events = events.reset_index(drop=True)  # any index, even a repeated one, as from a concat
    if cfg.method == "global_time":
        ts = events[S.TIMESTAMP]
        test_start, valid_start = pd.Timestamp(cfg.test_start), pd.Timestamp(cfg.valid_start)
        label = np.where(ts >= test_start, 2, np.where(ts >= valid_start, 1, 0))
    else:
        ordered = events.sort_values([S.USER_ID, S.TIMESTAMP, S.ITEM_ID], kind="stable")
        groups = ordered.groupby(S.USER_ID, sort=False)
        n = groups[S.USER_ID].transform("size").to_numpy()
        from_end = n - groups.cumcount().to_numpy()  # 1 for a user's last event
        n_test = _tail_sizes(n, cfg.test_fraction, cfg.test_n)
        if cfg.valid_fraction is None and cfg.valid_n is None:
            n_valid = np.zeros_like(n)
        else:
            n_valid = _tail_sizes(n - n_test, cfg.valid_fraction, cfg.valid_n)
        n_valid = np.minimum(n_valid, np.maximum(n - n_test - 1, 0))  # keep one train event
        label = np.where(from_end <= n_test, 2, np.where(from_end <= n_test + n_valid, 1, 0))
        label[n < cfg.min_user_events] = 0
        label = pd.Series(label, index=ordered.index).reindex(events.index).to_numpy()
    return {name: events[label == i].reset_index(drop=True) for i, name in enumerate(SPLITS)}


def items_by_user(events: pd.DataFrame, event_types: list[str]) -> dict[str, set]:
    """user -> the items they have an event of these types with."""
    chosen = events[events[S.EVENT_TYPE].isin(event_types)]
    return {str(u): set(g.astype(str)) for u, g in chosen.groupby(S.USER_ID)[S.ITEM_ID]}


def relevant_items(held_out: pd.DataFrame, event_types: list[str], had: dict[str, set] | None = None) -> dict[str, set]:
    """user -> held-out items of these event types, minus the items in ``had`` when given.

    Users left with no relevant item are dropped: only users with one can be scored.
    """
    truth = items_by_user(held_out, event_types)
    if had is not None:
        truth = {u: items - had.get(u, set()) for u, items in truth.items()}
    return {u: items for u, items in truth.items() if items}
