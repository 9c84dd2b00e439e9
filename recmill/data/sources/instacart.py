"""The public Instacart Market Basket files: orders, order lines, products, aisles, departments.

The files carry no dates, only each user's order sequence, the days since the prior
order and the hour of day. An order's time is the user's cumulative days from a fixed
anchor plus the hour; a line adds add_to_cart_order seconds so that cart order is kept.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from recmill import schema as S
from recmill.data.sources.files import file_rows, missing_file, read_csv, to_number
from recmill.data.tables import Origin, Tables, canonical_events, canonical_items, canonical_users
from recmill.errors import DataLoadError

ANCHOR = pd.Timestamp("2017-01-01")
ORDER_COLUMNS = ("order_id", "user_id", "eval_set", "order_number", "order_hour_of_day", "days_since_prior_order")
LINE_COLUMNS = ("order_id", "product_id", "add_to_cart_order")
LINE_FILES = ("order_products__prior.csv", "order_products__train.csv")
CATALOGUE_FILES = ("products.csv", "aisles.csv", "departments.csv")


def load_instacart(path: Path) -> Tables:
    line_files = [path / name for name in LINE_FILES if (path / name).is_file()]
    if not (path / "orders.csv").is_file() or not line_files or not all((path / n).is_file() for n in CATALOGUE_FILES):
        raise missing_file(path, f"orders.csv, {' and/or '.join(LINE_FILES)}, {', '.join(CATALOGUE_FILES)}")

    orders = _orders(path / "orders.csv")
    lines = pd.concat([_lines(f) for f in line_files], ignore_index=True)
    # Lines whose order is not in orders.csv keep a missing user and time for validation to report.
    placed = orders.set_index("order_id")[[S.USER_ID, "time"]].reindex(lines["order_id"])
    events = pd.DataFrame(
        {
            S.USER_ID: placed[S.USER_ID].to_numpy(),
            S.ITEM_ID: lines["product_id"].to_numpy(),
            S.TIMESTAMP: placed["time"].to_numpy() + pd.to_timedelta(lines["add_to_cart_order"], unit="s").to_numpy(),
            S.EVENT_TYPE: "purchase",
            S.ORDER_ID: lines["order_id"].to_numpy(),
        }
    )
    users = pd.DataFrame({S.USER_ID: orders[S.USER_ID].drop_duplicates()})
    return Tables(
        canonical_events(events),
        _items(path),
        canonical_users(users),
        origins={
            # events join the order lines with orders.csv: no single file line per row
            "events": Origin(str(path), None),
            "items": Origin(str(path / "products.csv"), 2),
            "users": Origin(str(path / "orders.csv"), None),
        },
    )


def _orders(file: Path) -> pd.DataFrame:
    orders = read_csv(file, ORDER_COLUMNS, text=("order_id", "user_id", "eval_set"), only_required=True)
    for column in ("order_number", "order_hour_of_day", "days_since_prior_order"):
        orders[column] = to_number(orders[column], file, column, 2)
    repeated = orders["order_id"].duplicated(keep=False)
    if repeated.any():
        raise DataLoadError(file, "order_id must be unique", column="order_id", rows=file_rows(repeated, 2))
    repeated = orders.duplicated([S.USER_ID, "order_number"], keep=False)
    if repeated.any():  # the numbers place a user's orders in time: a repeat cannot be placed
        raise DataLoadError(file, "a user's order_number must not repeat", column="order_number", rows=file_rows(repeated, 2))
    # A user's first order has no days_since_prior_order: it starts at the anchor.
    in_sequence = orders.sort_values([S.USER_ID, "order_number"], kind="stable")
    days = in_sequence["days_since_prior_order"].fillna(0).groupby(in_sequence[S.USER_ID], sort=False).cumsum()
    hours = pd.to_timedelta(orders["order_hour_of_day"], unit="h")
    orders["time"] = ANCHOR + pd.to_timedelta(days.sort_index(), unit="D") + hours
    return orders


def _lines(file: Path) -> pd.DataFrame:
    lines = read_csv(file, LINE_COLUMNS, text=("order_id", "product_id"), only_required=True)
    lines["add_to_cart_order"] = to_number(lines["add_to_cart_order"], file, "add_to_cart_order", 2)
    return lines


def _items(path: Path) -> pd.DataFrame:
    products = read_csv(
        path / "products.csv", ("product_id", "product_name", "aisle_id", "department_id"),
        text=("product_id", "product_name", "aisle_id", "department_id"),
    )
    aisles = read_csv(path / "aisles.csv", ("aisle_id", "aisle"), text=("aisle_id", "aisle"))
    departments = read_csv(path / "departments.csv", ("department_id", "department"), text=("department_id", "department"))
    aisle = products["aisle_id"].map(dict(zip(aisles["aisle_id"], aisles["aisle"])))
    items = pd.DataFrame(
        {
            S.ITEM_ID: products["product_id"],
            "name": products["product_name"],
            "category": aisle,
            "aisle": aisle,
            "department": products["department_id"].map(dict(zip(departments["department_id"], departments["department"]))),
        }
    )
    return canonical_items(items)
