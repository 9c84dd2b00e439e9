"""Canonical table schemas (what every source produces) and the published warehouse tables.

Canonical tables, as pandas DataFrames:

- ``events``: user_id (str), item_id (str), timestamp (datetime64[ns], UTC, naive),
  event_type (str, one of EVENT_TYPES), value (float; the rating for rating events,
  1.0 otherwise unless the source says), order_id (str or missing).
- ``items``: item_id (str) plus optional name, description, category, tags, brand,
  price (float), and any further attribute columns a source has (aisle, department...).
- ``users``: user_id (str) plus any attribute columns (age, gender, ...).

IDs are strings everywhere, in the canonical tables and in the warehouse.
"""

from __future__ import annotations

USER_ID = "user_id"
ITEM_ID = "item_id"
TIMESTAMP = "timestamp"
EVENT_TYPE = "event_type"
VALUE = "value"
ORDER_ID = "order_id"

EVENT_TYPES = ("view", "cart", "purchase", "rating")
DEFAULT_EVENT_TYPE = "purchase"

EVENT_COLUMNS = (USER_ID, ITEM_ID, TIMESTAMP, EVENT_TYPE, VALUE, ORDER_ID)
EVENT_REQUIRED = (USER_ID, ITEM_ID, TIMESTAMP)
ITEM_COLUMNS = (ITEM_ID, "name", "description", "category", "tags", "brand", "price")
USER_COLUMNS = (USER_ID,)

RECOMMENDATIONS = (
    ("user_id", "VARCHAR"),
    ("item_id", "VARCHAR"),
    ("item_name", "VARCHAR"),
    ("item_category", "VARCHAR"),
    ("rank", "INTEGER"),
    ("score", "DOUBLE"),
    ("model", "VARCHAR"),
    ("model_version", "VARCHAR"),
    ("reason", "VARCHAR"),
    ("run_id", "VARCHAR"),
    ("generated_at", "TIMESTAMP"),
)
# Published tables: name -> ordered (column, DuckDB type).
WAREHOUSE_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "recommendations": RECOMMENDATIONS,
    "similar_items": (
        ("item_id", "VARCHAR"),
        ("similar_item_id", "VARCHAR"),
        ("rank", "INTEGER"),
        ("score", "DOUBLE"),
        ("model", "VARCHAR"),
        ("run_id", "VARCHAR"),
    ),
    "model_metrics": (
        ("run_id", "VARCHAR"),
        ("model", "VARCHAR"),
        ("model_version", "VARCHAR"),
        ("split", "VARCHAR"),
        ("metric", "VARCHAR"),
        ("k", "INTEGER"),  # NULL for metrics without a cut-off (rmse, mae)
        ("value", "DOUBLE"),
        ("slice", "VARCHAR"),  # 'all', or 'segment=<label>' for one user segment
    ),
    "user_segments": (
        ("user_id", "VARCHAR"),
        ("segment", "INTEGER"),
        ("label", "VARCHAR"),
        ("recency_days", "DOUBLE"),
        ("frequency", "DOUBLE"),
        ("monetary", "DOUBLE"),
        ("run_id", "VARCHAR"),
    ),
    "segment_profiles": (
        ("segment", "INTEGER"),
        ("label", "VARCHAR"),
        ("size", "INTEGER"),
        ("recency_days", "DOUBLE"),
        ("frequency", "DOUBLE"),
        ("monetary", "DOUBLE"),
        ("basket_size", "DOUBLE"),
        ("top_categories", "VARCHAR"),
        ("run_id", "VARCHAR"),
    ),
    "buy_again": (
        ("user_id", "VARCHAR"),
        ("item_id", "VARCHAR"),
        ("probability", "DOUBLE"),  # of being in the user's next order
        ("rank", "INTEGER"),
        ("run_id", "VARCHAR"),
    ),
    "items": (  # the catalogue, so SQL readers can name and filter what they are shown
        ("item_id", "VARCHAR"),
        ("name", "VARCHAR"),
        ("category", "VARCHAR"),
        ("brand", "VARCHAR"),
        ("price", "DOUBLE"),
    ),
    "recommendations_challenger": RECOMMENDATIONS,  # the challenger's lists while an A/B test runs
    "ab_assignments": (
        ("user_id", "VARCHAR"),
        ("variant", "VARCHAR"),  # 'champion' or 'challenger'
        ("run_id", "VARCHAR"),
    ),
    "model_decisions": (
        ("run_id", "VARCHAR"),
        ("champion_version", "VARCHAR"),
        ("challenger_version", "VARCHAR"),
        ("metric", "VARCHAR"),
        ("champion_value", "DOUBLE"),
        ("challenger_value", "DOUBLE"),
        ("p_value", "DOUBLE"),
        ("decision", "VARCHAR"),  # promote, keep, activate, rollback
        ("reasons", "VARCHAR"),
        ("decided_at", "TIMESTAMP"),
    ),
    "drift_checks": (
        ("run_id", "VARCHAR"),
        ("check", "VARCHAR"),  # events, user_features, item_features, prediction
        ("column", "VARCHAR"),  # '*' for a data set's share of drifted columns
        ("statistic", "VARCHAR"),
        ("value", "DOUBLE"),
        ("threshold", "DOUBLE"),
        ("drifted", "BOOLEAN"),
    ),
    "runs": (
        ("run_id", "VARCHAR"),
        ("started_at", "TIMESTAMP"),
        ("finished_at", "TIMESTAMP"),
        ("status", "VARCHAR"),
        ("data_fingerprint", "VARCHAR"),
        ("params_json", "VARCHAR"),
    ),
}
# The order a publish writes a table's rows in: DuckDB skips the row groups whose min / max
# of the first column rule a lookup out, so one user's or item's rows are read, not all.
# The first column is indexed too: a lookup reads its rows, not a whole row group.
SORT_KEYS: dict[str, tuple[str, ...]] = {
    "recommendations": ("user_id", "rank"),
    "recommendations_challenger": ("user_id", "rank"),
    "similar_items": ("item_id", "rank"),
    "buy_again": ("user_id", "rank"),
    "user_segments": ("user_id",),
    "ab_assignments": ("user_id",),
    "items": ("item_id",),
}
# the runs status of a refresh between retrains (pipelines.refresh): its rows replaced some users' lists
REFRESHED = "refreshed"
# columns the warehouse copies from `items` into a table as it publishes (column -> items'
# column): a user's list, or the part of it in one category, is then read without a join
ITEM_LABELS = {"item_name": "name", "item_category": "category"}
# Tables that keep their history across runs (the others hold the latest run only).
HISTORY_TABLES = ("model_metrics", "model_decisions", "drift_checks", "runs")
