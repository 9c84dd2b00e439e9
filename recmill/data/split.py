"""Temporal train / valid / test split of the events."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from recmill import schema as S
from recmill.config import SplitConfig
from recmill.data.interactions import factorized
from recmill.data.tables import ID_DTYPE
from recmill.sql import connect, literal

SPLITS = ("train", "valid", "test")


def _tail_size(n: str, fraction: float | None, count: int | None) -> str:
    """SQL for how many of a user's last events to take: last N, or the last fraction
    rounded to the nearest whole (halves up), at least one."""
    if count is not None:
        return f"least({int(count)}, {n})"
    return f"greatest(1, floor({n} * {float(fraction)!r} + 0.5))"


def split_label_sql(cfg: SplitConfig, source: str) -> str:
    """SELECT pos, label (0 train, 1 valid, 2 test) for every row of ``source``, a relation
    with the event columns and ``pos``, each row's position in the canonical table.

    per_user: each user's events in order of (timestamp, item_id, pos); the last fraction
    (or last N) is test and the same share of what remains before it is valid, leaving at
    least one train event. Users with fewer than ``min_user_events`` events stay in train.
    global_time: events before valid_start are train, then valid up to test_start, then test.
    """
    if cfg.method == "global_time":
        return f"""
            SELECT pos, CASE WHEN "timestamp" >= TIMESTAMP '{pd.Timestamp(cfg.test_start)}' THEN 2
                             WHEN "timestamp" >= TIMESTAMP '{pd.Timestamp(cfg.valid_start)}' THEN 1 ELSE 0 END AS label
            FROM {source}"""
    n_test = _tail_size("n", cfg.test_fraction, cfg.test_n)
    if cfg.valid_fraction is None and cfg.valid_n is None:
        n_valid = "0"
    else:
        n_valid = f"least({_tail_size('(n - n_test)', cfg.valid_fraction, cfg.valid_n)}, greatest(n - n_test - 1, 0))"
    return f"""
        WITH ranked AS (
            SELECT pos, count(*) OVER (PARTITION BY user_id) AS n,
                   row_number() OVER (PARTITION BY user_id ORDER BY "timestamp" DESC, item_id DESC, pos DESC) AS from_end
            FROM {source}
        ), sized AS (SELECT pos, n, from_end, {n_test} AS n_test FROM ranked),
        both_sized AS (SELECT pos, n, from_end, n_test, {n_valid} AS n_valid FROM sized)
        SELECT pos, CASE WHEN n < {int(cfg.min_user_events)} THEN 0
                         WHEN from_end <= n_test THEN 2
                         WHEN from_end <= n_test + n_valid THEN 1 ELSE 0 END::TINYINT AS label
        FROM both_sized"""


def temporal_split(events: pd.DataFrame, cfg: SplitConfig) -> dict[str, pd.DataFrame]:
    """Split a frame of events in time (see split_label_sql). Returns {'train', 'valid',
    'test'} frames, each in the order of ``events``."""
    events = events.reset_index(drop=True)  # any index, even a repeated one, as from a concat
    con = connect()  # the labels do not depend on threads: every window is totally ordered
    try:
        frame = events[[S.USER_ID, S.ITEM_ID, S.TIMESTAMP]].assign(pos=np.arange(len(events)))
        con.register("events", frame)
        labels = con.execute(f"SELECT label FROM ({split_label_sql(cfg, 'events')}) ORDER BY pos").fetchnumpy()["label"]
    finally:
        con.close()
    return {name: events[labels == i].reset_index(drop=True) for i, name in enumerate(SPLITS)}


def split_file(events: Path, out_dir: Path, cfg: SplitConfig, con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Split the canonical events file into out_dir/{train,valid,test}.parquet, out of core,
    each in the order of the file; returns the row count of each."""
    out_dir.mkdir(parents=True, exist_ok=True)
    con.execute(f"CREATE OR REPLACE TEMP VIEW split_source AS SELECT * RENAME (file_row_number AS pos) FROM read_parquet({literal(events)}, file_row_number = true)")
    con.execute(f"CREATE OR REPLACE TEMP TABLE split_labels AS {split_label_sql(cfg, 'split_source')}")
    counts = {}
    for i, name in enumerate(SPLITS):
        path = out_dir / f"{name}.parquet"
        tmp = out_dir / f".{name}.parquet.tmp"  # renamed into place: a reader never sees half a file
        con.execute(f"""
            COPY (SELECT e.* EXCLUDE (pos) FROM split_source e JOIN split_labels l USING (pos)
                  WHERE l.label = {i} ORDER BY pos) TO {literal(tmp)} (FORMAT parquet)""")
        os.replace(tmp, path)
        counts[name] = con.execute(f"SELECT count(*) FROM split_labels WHERE label = {i}").fetchone()[0]
    con.execute("DROP TABLE split_labels")
    return counts


def items_by_user(events: pd.DataFrame, event_types: list[str]) -> dict[str, set]:
    """user -> the items they have an event of these types with."""
    chosen = events[events[S.EVENT_TYPE].isin(event_types).to_numpy(bool)]
    users, user_ids = factorized(chosen[S.USER_ID])
    items, item_ids = factorized(chosen[S.ITEM_ID])
    known = (users >= 0) & (items >= 0)
    users, items = users[known], items[known]
    order = np.argsort(users, kind="stable")
    bounds = np.searchsorted(users[order], np.arange(len(user_ids) + 1))
    names = item_ids[items[order]]  # each id one shared str: no object made per event
    return {user: set(names[bounds[i] : bounds[i + 1]]) for i, user in enumerate(user_ids) if bounds[i + 1] > bounds[i]}


def relevant_items(held_out: pd.DataFrame, event_types: list[str], had: dict[str, set] | None = None) -> dict[str, set]:
    """user -> held-out items of these event types, minus the items in ``had`` when given.

    Users left with no relevant item are dropped: only users with one can be scored.
    """
    truth = items_by_user(held_out, event_types)
    if had is not None:
        truth = {u: items - had.get(u, set()) for u, items in truth.items()}
    return {u: items for u, items in truth.items() if items}


def label_split(events: pd.DataFrame, label_fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(earlier events, label events): each user's last label_fraction of events, in time, labels.

    A user with one event keeps it in the earlier part, so every user has some history."""
    parts = temporal_split(events, SplitConfig(test_fraction=label_fraction, valid_fraction=None, min_user_events=2))
    return parts["train"], parts["test"]


def user_item_pairs(events: pd.DataFrame, event_types) -> pd.DataFrame:
    """The distinct (user_id, item_id) pairs with an event of these types, as Arrow strings
    (no Python object per row: what a dict of sets per user costs at 40M events)."""
    chosen = events.loc[events[S.EVENT_TYPE].isin(list(event_types)).to_numpy(bool), [S.USER_ID, S.ITEM_ID]]  # no copy of the other columns
    return chosen.astype(ID_DTYPE).dropna().drop_duplicates()


def pairs_not_in(pairs: pd.DataFrame, had: pd.DataFrame) -> pd.DataFrame:
    """The (user_id, item_id) pairs of ``pairs`` that ``had`` lacks, sorted."""
    both = pairs.merge(had, how="left", indicator=True)
    new = both[(both["_merge"] == "left_only").to_numpy(bool)][[S.USER_ID, S.ITEM_ID]]
    return new.sort_values([S.USER_ID, S.ITEM_ID]).reset_index(drop=True)


def label_positives(earlier: pd.DataFrame, labels: pd.DataFrame, positive_event_types) -> pd.DataFrame:
    """(user_id, item_id) pairs the user came to have in the label slice and did not have before."""
    return pairs_not_in(user_item_pairs(labels, positive_event_types), user_item_pairs(earlier, positive_event_types))
