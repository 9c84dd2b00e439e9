"""User, item and user-item features, computed in DuckDB straight from parquet files.

Everything runs out of core: DuckDB reads the event and item files itself, works under a
memory limit and spills to a temporary folder, and writes the feature tables with COPY.
Only events strictly before ``cutoff`` count, so the features describe the state before a
label window. "Days since" and ages are measured to the cutoff, or to the latest event
when there is none.

Positive events (purchases and ratings by default) are grouped into orders: their
order_id, or the day of the event when they have none. A user's orders are numbered
1, 2, ... by the time of their first event. An event is a reorder when its item was in
an earlier order of the same user. The cart position of an event is its place within
its order (by timestamp, then item id), counting positive events only, and exists only
for events with an order_id. User and item IDs are strings or integer codes (reorder
passes codes in the ids' order: integers group and join faster). docs/features.md lists
every column.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from recmill.io import write_json
from recmill.sql import connect, literal

TABLES = ("user_features", "item_features", "user_item_features")
ID_COLUMNS = ("user_id", "item_id")  # strings, or integer codes (no statistics either way)
ITEM_ATTRIBUTES = ("category", "aisle", "department")
QUANTILES = (0.01, 0.5, 0.99)
NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE", "BOOLEAN")
DAY_US = 86_400_000_000  # microseconds in a day


def build_features(
    events: Path,
    items: Path | None,
    out_dir: Path,
    cutoff: datetime | None = None,
    positive_event_types: Sequence[str] = ("purchase", "rating"),
    memory_limit: str = "8GB",
    threads: int = 2,
    tables: Sequence[str] = TABLES,
    stats: bool = True,
) -> dict[str, Path]:
    """Write user_features, item_features and user_item_features (parquet; only ``tables``
    when given) and, with ``stats``, their feature_stats.json into ``out_dir``; returns
    their paths by name ("feature_stats" for the JSON). ``events`` and ``items`` are
    canonical parquet files; ``items`` is optional. The statistics run on one thread (sums
    in one order), and the pair table is the largest to sort and write: at 40M events a
    caller that reads neither saves a minute.
    """
    if not positive_event_types:
        raise ValueError("positive_event_types must name at least one event type")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / f"{name}.parquet" for name in TABLES if name in tables}
    with tempfile.TemporaryDirectory(prefix=".features-", dir=out_dir) as work:
        con = connect(memory_limit, threads, Path(work) / "spill")
        try:
            _load(con, Path(events), None if items is None else Path(items), cutoff)
            _build(con, positive_event_types)
            for name, path in paths.items():
                # written beside the output and renamed, so a reader never sees half a file
                tmp = Path(work) / path.name
                con.execute(f"COPY (SELECT * FROM {name} ORDER BY ALL) TO {literal(str(tmp))} (FORMAT parquet)")
                os.replace(tmp, path)
            if stats:
                con.execute("SET threads = 1")  # sums of doubles in one order: the same figures every run
                figures = {name: _stats(con, path) for name, path in paths.items()}
        finally:
            con.close()
    if stats:
        paths["feature_stats"] = out_dir / "feature_stats.json"
        write_json(paths["feature_stats"], figures)
    return paths


def _timestamp(value: datetime | None) -> str:
    if value is None:
        return "NULL::TIMESTAMP"
    if value.tzinfo is not None:  # canonical timestamps are naive UTC
        value = value.astimezone(UTC).replace(tzinfo=None)
    return f"TIMESTAMP '{value:%Y-%m-%d %H:%M:%S.%f}'"


def _load(con, events: Path, items: Path | None, cutoff: datetime | None) -> None:
    """Views ev (events before the cutoff), catalogue (item attributes, NULL where the items
    file lacks them) and the table ref (the reference time)."""
    before = f"timestamp < {_timestamp(cutoff)}" if cutoff is not None else "TRUE"
    con.execute(f"""
        CREATE VIEW ev AS
        SELECT user_id, item_id, CAST(timestamp AS TIMESTAMP) AS ts, event_type, order_id
        FROM read_parquet({literal(str(events))}) WHERE {before}
    """)
    if items is None:
        have, source = set(), "(SELECT NULL::VARCHAR AS item_id WHERE FALSE)"
    else:
        source = f"read_parquet({literal(str(items))})"
        have = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    columns = [f"CAST({c} AS VARCHAR) AS {c}" if c in have else f"NULL::VARCHAR AS {c}" for c in ITEM_ATTRIBUTES]
    columns.append("CAST(price AS DOUBLE) AS price" if "price" in have else "NULL::DOUBLE AS price")
    item_type = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE ev)").fetchall())["item_id"]  # strings or codes
    con.execute(f"CREATE VIEW catalogue AS SELECT CAST(item_id AS {item_type}) AS item_id, {', '.join(columns)} FROM {source}")
    reference = _timestamp(cutoff) if cutoff is not None else "(SELECT max(ts) FROM ev)"
    con.execute(f"CREATE TABLE ref AS SELECT epoch_us({reference}) AS ref_us")


def _days_to_ref(timestamp: str) -> str:
    """SQL for the days from ``timestamp`` to the reference time (needs the ref table)."""
    return f"(ref.ref_us - epoch_us({timestamp})) / {DAY_US}"


def _build(con, positive: Sequence[str]) -> None:
    types = ", ".join(literal(t) for t in positive)
    # Positive events with their order key and cart position. A day key starts with
    # 'day ', which keeps it apart from the user's order ids.
    con.execute(f"""
        CREATE TABLE pos AS
        SELECT user_id, item_id, ts,
               coalesce(order_id, 'day ' || CAST(CAST(ts AS DATE) AS VARCHAR)) AS basket,
               CASE WHEN order_id IS NOT NULL THEN
                   row_number() OVER (PARTITION BY user_id, order_id ORDER BY ts, item_id) END AS cart_pos
        FROM ev WHERE event_type IN ({types})
    """)
    con.execute("""
        CREATE TABLE baskets AS
        SELECT user_id, basket, min(ts) AS basket_ts, count(DISTINCT item_id) AS size,
               row_number() OVER (PARTITION BY user_id ORDER BY min(ts), basket) AS order_no
        FROM pos GROUP BY user_id, basket
    """)
    # One row per user, item and order containing it: the base of the pair features.
    con.execute("""
        CREATE TABLE pair_orders AS
        SELECT p.user_id, p.item_id, b.order_no, count(*) AS n, max(p.ts) AS last_ts,
               sum(p.cart_pos) AS cart_pos_sum, count(p.cart_pos) AS cart_pos_n
        FROM pos p JOIN baskets b USING (user_id, basket)
        GROUP BY p.user_id, p.item_id, b.order_no
    """)
    con.execute("DROP TABLE pos")
    # order_no - row_number stays constant along consecutive orders (a streak); every
    # order after the pair's first holds reorders.
    con.execute("""
        CREATE TABLE pairs AS
        WITH marked AS (
            SELECT *, row_number() OVER w AS nth, order_no - row_number() OVER w AS streak
            FROM pair_orders WINDOW w AS (PARTITION BY user_id, item_id ORDER BY order_no)
        ), streaks AS (
            SELECT user_id, item_id, count(*) AS length, sum(n) AS n,
                   coalesce(sum(n) FILTER (WHERE nth > 1), 0) AS repeats, max(order_no) AS last_order,
                   max(last_ts) AS last_ts, sum(cart_pos_sum) AS cart_pos_sum, sum(cart_pos_n) AS cart_pos_n
            FROM marked GROUP BY user_id, item_id, streak
        )
        SELECT user_id, item_id, CAST(sum(n) AS BIGINT) AS times_bought, CAST(sum(length) AS BIGINT) AS n_orders,
               CAST(sum(repeats) AS BIGINT) AS repeats, max(last_order) AS last_order, max(last_ts) AS last_ts,
               CAST(sum(cart_pos_sum) AS BIGINT) AS cart_pos_sum, CAST(sum(cart_pos_n) AS BIGINT) AS cart_pos_n,
               max(length) AS longest_streak
        FROM streaks GROUP BY user_id, item_id
    """)
    con.execute("DROP TABLE pair_orders")
    con.execute(f"""
        CREATE TABLE user_orders AS
        SELECT user_id, count(*) AS n_orders, avg(size) AS mean_basket_size,
               (epoch_us(max(basket_ts)) - epoch_us(min(basket_ts))) / {DAY_US} / nullif(count(*) - 1, 0)
                   AS mean_days_between_orders,
               {_days_to_ref('max(basket_ts)')} AS days_since_last_order
        FROM baskets, ref GROUP BY user_id, ref.ref_us
    """)
    con.execute("""
        CREATE TABLE user_features AS
        WITH bought AS (
            SELECT p.user_id, CAST(sum(times_bought) AS BIGINT) AS n_positive, count(*) AS n_items,
                   sum(repeats) / sum(times_bought) AS reorder_share,
                   sum(times_bought * c.price ORDER BY p.item_id) / sum(times_bought) FILTER (WHERE c.price IS NOT NULL) AS mean_price
            FROM pairs p LEFT JOIN catalogue c USING (item_id) GROUP BY p.user_id
        ), categories AS (
            SELECT p.user_id, c.category, sum(times_bought) AS n
            FROM pairs p JOIN catalogue c USING (item_id) WHERE c.category IS NOT NULL GROUP BY ALL
        ), top AS (
            SELECT user_id, first(category ORDER BY n DESC, category) AS top_category,
                   max(n) / sum(n) AS top_category_share
            FROM categories GROUP BY user_id
        )
        SELECT u.user_id, coalesce(o.n_orders, 0) AS n_orders, coalesce(b.n_positive, 0) AS n_positive,
               o.mean_basket_size, o.mean_days_between_orders, o.days_since_last_order,
               coalesce(b.n_items, 0) AS n_items, b.reorder_share, t.top_category, t.top_category_share, b.mean_price
        FROM (SELECT DISTINCT user_id FROM ev) u
        LEFT JOIN user_orders o USING (user_id) LEFT JOIN bought b USING (user_id) LEFT JOIN top t USING (user_id)
    """)
    con.execute(f"""
        CREATE TABLE item_features AS
        WITH seen AS (
            SELECT item_id, min(ts) AS first_ts, count(*) FILTER (WHERE event_type = 'view') AS views,
                   count(*) FILTER (WHERE event_type IN ({types})) AS positives
            FROM ev GROUP BY item_id
        ), bought AS (
            SELECT item_id, count(*) AS n_users, sum(repeats) / sum(times_bought) AS reorder_rate,
                   count(*) FILTER (WHERE n_orders >= 2) / count(*) AS repeat_user_share,
                   sum(cart_pos_sum) / nullif(sum(cart_pos_n), 0) AS mean_cart_position
            FROM pairs GROUP BY item_id
        ), priced AS (
            SELECT item_id, percent_rank() OVER (PARTITION BY category ORDER BY price) AS price_level
            FROM catalogue WHERE price IS NOT NULL AND category IS NOT NULL
        )
        SELECT i.item_id, coalesce(b.n_users, 0) AS n_users, coalesce(s.positives, 0) AS n_positive,
               b.reorder_rate, b.repeat_user_share, b.mean_cart_position, c.price, pr.price_level,
               c.category, c.aisle, c.department,
               {_days_to_ref('s.first_ts')} AS age_days, s.positives / nullif(s.views, 0) AS view_conversion
        FROM (SELECT item_id FROM catalogue UNION SELECT item_id FROM seen) i
        LEFT JOIN seen s USING (item_id) LEFT JOIN bought b USING (item_id)
        LEFT JOIN catalogue c USING (item_id) LEFT JOIN priced pr USING (item_id), ref
    """)
    con.execute(f"""
        CREATE TABLE user_item_features AS
        SELECT p.user_id, p.item_id, p.times_bought, p.n_orders / o.n_orders AS order_share,
               o.n_orders - p.last_order AS orders_since_last, {_days_to_ref('p.last_ts')} AS days_since_last,
               p.cart_pos_sum / nullif(p.cart_pos_n, 0) AS mean_cart_position, p.longest_streak,
               p.last_order = o.n_orders AS in_last_order
        FROM pairs p JOIN user_orders o USING (user_id), ref
    """)


def _stats(con, path: Path) -> dict[str, dict]:
    """count, nulls, mean, std, min, p01, p50, p99, max of each numeric column (booleans as 0/1)."""
    source = f"read_parquet({literal(str(path))})"
    columns = [
        name for name, kind, *_ in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
        if kind in NUMERIC_TYPES and name not in ID_COLUMNS
    ]
    quantiles = "[" + ", ".join(map(str, QUANTILES)) + "]"
    parts = []
    for c in columns:
        x = f"CAST({c} AS DOUBLE)"
        parts += [f"count({x})", f"count(*) - count({x})", f"avg({x})", f"stddev_samp({x})", f"min({x})",
                  f"quantile_cont({x}, {quantiles})", f"max({x})"]
    row = con.execute(f"SELECT {', '.join(parts)} FROM {source}").fetchone()
    stats = {}
    for j, c in enumerate(columns):
        count, nulls, mean, std, low, q, high = row[7 * j : 7 * j + 7]
        q = q or [None] * len(QUANTILES)
        stats[c] = {"count": count, "nulls": nulls, "mean": mean, "std": std, "min": low,
                    "p01": q[0], "p50": q[1], "p99": q[2], "max": high}
    return stats
