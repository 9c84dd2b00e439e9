"""Malformed inputs, one per case: the files a user might hand recmill, each with what the
error must name. tests/integration/test_bad_inputs.py runs every one."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

USERS, ITEMS, PER_USER = 8, 10, 8
T0 = 1_700_000_000  # 2023-11-14


def events_rows() -> list[dict]:
    """A valid events table: 8 users x 8 purchases of 10 items, a day apart."""
    return [
        {"user_id": f"u{u}", "item_id": f"i{(u + e) % ITEMS}", "event_type": "purchase", "timestamp": T0 + 86_400 * (u * PER_USER + e)}
        for u in range(USERS) for e in range(PER_USER)
    ]


def items_rows() -> list[dict]:
    return [{"item_id": f"i{i}", "name": f"item {i}", "category": f"c{i % 3}", "price": 1.5 + i} for i in range(ITEMS)]


def csv(rows: list[dict]) -> bytes:
    return pd.DataFrame(rows).to_csv(index=False).encode()


def parquet(rows: list[dict] | pd.DataFrame) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(pd.DataFrame(rows), preserve_index=False), out)
    return out.getvalue()


def with_row(rows: list[dict], at: int, **changes) -> list[dict]:
    rows = [dict(r) for r in rows]
    rows[at].update(changes)
    return rows


@dataclass
class Case:
    name: str
    files: dict[str, bytes]            # file name -> content
    expect: list[str]                  # what the error must say: the file, the column, the rows or the check
    source: str = "files"
    accepted: bool = False             # valid input that looks hostile: it must load, verbatim
    settings: list[str] = field(default_factory=list)


def ok(**extra: bytes) -> dict[str, bytes]:
    return {"events.csv": csv(events_rows()), "items.csv": csv(items_rows()), **extra}


def instacart(orders_change=None, drop=()) -> dict[str, bytes]:
    """A small Instacart-format export: orders, order lines (prior), products, aisles, departments."""
    orders, lines = [], []
    for u in range(USERS):
        for n in range(1, 5):
            oid = u * 10 + n
            orders.append({"order_id": oid, "user_id": u + 1, "eval_set": "prior", "order_number": n, "order_dow": n % 7,
                           "order_hour_of_day": 10, "days_since_prior_order": None if n == 1 else 7.0})
            lines += [{"order_id": oid, "product_id": (u + n + j) % ITEMS + 1, "add_to_cart_order": j + 1, "reordered": 0} for j in range(3)]
    if orders_change:
        orders = orders_change(orders)
    files = {
        "orders.csv": csv(orders), "order_products__prior.csv": csv(lines),
        "products.csv": csv([{"product_id": p, "product_name": f"p{p}", "aisle_id": 1, "department_id": 1} for p in range(1, ITEMS + 1)]),
        "aisles.csv": csv([{"aisle_id": 1, "aisle": "fruit"}]), "departments.csv": csv([{"department_id": 1, "department": "produce"}]),
    }
    return {k: v for k, v in files.items() if k not in drop}


def movielens(data: str) -> dict[str, bytes]:
    items = "".join(f"{i}|Film {i} (1995)|01-Jan-1995||http://x|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n" for i in range(1, ITEMS + 1))
    users = "".join(f"{u}|30|F|other|12345\n" for u in range(1, USERS + 1))
    return {"u.data": data.encode(), "u.item": items.encode("latin-1"), "u.user": users.encode()}


def ml_ratings(change=lambda lines: lines) -> str:
    lines = [f"{u}\t{(u + e) % ITEMS + 1}\t{(u + e) % 5 + 1}\t{T0 + 86_400 * (u * PER_USER + e)}" for u in range(1, USERS + 1) for e in range(PER_USER)]
    return "\n".join(change(lines)) + "\n"


CASES = [
    Case("missing required column", ok(**{"events.csv": csv([{k: v for k, v in r.items() if k != "item_id"} for r in events_rows()])}),
         ["events.csv", "item_id"]),
    Case("empty file", ok(**{"events.csv": b""}), ["events.csv", "empty"]),
    Case("header only", ok(**{"events.csv": b"user_id,item_id,event_type,timestamp\n"}), ["events", "too few events"]),
    Case("timestamp that does not parse", ok(**{"events.csv": csv(with_row(events_rows(), 4, timestamp="yesterday"))}),
         ["events.csv", "timestamp", "line 6"]),
    Case("timestamp in the future", ok(**{"events.csv": csv(with_row(events_rows(), 3, timestamp=4_102_444_800))}),
         ["events.csv", "timestamp is in the future", "line 5"]),
    Case("null user id", ok(**{"events.csv": csv(with_row(events_rows(), 7, user_id=None))}), ["events.csv", "user_id", "line 9"]),
    Case("empty item id", ok(**{"events.csv": csv(with_row(events_rows(), 2, item_id=""))}), ["events.csv", "item_id", "line 4"]),
    Case("unknown event type", ok(**{"events.csv": csv(with_row(events_rows(), 10, event_type="click"))}),
         ["events.csv", "event_type must be one of", "line 12"]),
    Case("rating out of range", ok(**{"events.csv": csv(with_row([{**r, "value": 1.0} for r in events_rows()], 5, event_type="rating", value=9.0))}),
         ["events.csv", "rating value must be between", "line 7"]),
    Case("negative quantity", ok(**{"events.csv": csv(with_row([{**r, "value": 1.0} for r in events_rows()], 6, value=-2.0))}),
         ["events.csv", "value must be a finite number >= 0", "line 8"]),
    Case("enormous value", ok(**{"events.csv": csv([{**r, "value": 1.0} for r in events_rows()]).replace(b"purchase,1700000000,1.0", b"purchase,1700000000,1e400")}),
         ["events.csv", "value", "line 2"]),
    Case("negative price", ok(**{"items.csv": csv(with_row(items_rows(), 3, price=-4.0))}), ["items.csv", "price must be >= 0", "line 5"]),
    Case("price that is not a number", ok(**{"items.csv": csv(with_row(items_rows(), 1, price="cheap"))}), ["items.csv", "price", "line 3"]),
    Case("event for an item missing from the items table", ok(**{"events.csv": csv(with_row(events_rows(), 9, item_id="ghost"))}),
         ["events.csv", "item_id not found in the items table", "line 11"]),
    Case("duplicated rows", ok(**{"events.csv": csv(events_rows() + [events_rows()[12]])}), ["events.csv", "duplicate events"]),
    Case("items table with duplicate ids", ok(**{"items.csv": csv(items_rows() + [items_rows()[4]])}), ["items.csv", "item_id is not unique"]),
    Case("ragged csv row", ok(**{"events.csv": csv(events_rows()) + b"u1,i1,purchase,1700000000,surplus\n"}), ["events.csv", "line 66"]),
    Case("file that is not utf-8", ok(**{"items.csv": csv(items_rows()).replace(b"item 3", "caf\u00e9 3".encode("latin-1"))}),
         ["items.csv", "UTF-8", "line 5"]),
    Case("truncated parquet", {"events.parquet": parquet(events_rows())[:-40], "items.csv": csv(items_rows())}, ["events.parquet"]),
    Case("parquet timestamp of the wrong type", {"events.parquet": parquet([{**r, "timestamp": "soon" if n == 0 else str(r["timestamp"])} for n, r in enumerate(events_rows())]),
                                                  "items.csv": csv(items_rows())},
         ["events.parquet", "timestamp"]),
    Case("both csv and parquet events", ok(**{"events.parquet": parquet(events_rows())}), ["both events.csv and events.parquet"]),
    Case("no events file", {"items.csv": csv(items_rows())}, ["events.csv or events.parquet"]),
    Case("a single user", ok(**{"events.csv": csv([{**r, "user_id": "u0"} for r in events_rows()])}), ["events", "too few users"]),
    Case("a single item", ok(**{"events.csv": csv([{**r, "item_id": "i0"} for r in events_rows()])}), ["events", "too few items"]),
    Case("users table without events", ok(**{"events.csv": b"user_id,item_id,event_type,timestamp\n",
                                             "users.csv": csv([{"user_id": f"u{u}", "age": 30} for u in range(USERS)])}), ["events", "too few events"]),
    Case("instacart orders whose numbers go backwards", instacart(lambda orders: with_row(orders, 2, order_number=1)),
         ["orders.csv", "order_number"], source="instacart"),
    Case("instacart without products", instacart(drop=("products.csv",)), ["products.csv"], source="instacart"),
    Case("movielens line with a missing field", movielens(ml_ratings(lambda lines: lines[:3] + ["4\t5\t3"] + lines[3:])), ["u.data", "line 4"],
         source="movielens"),
    Case("movielens rating out of range", movielens(ml_ratings(lambda lines: [lines[0].rsplit("\t", 2)[0] + "\t7\t" + lines[0].rsplit("\t", 1)[1]] + lines[1:])),
         ["u.data", "rating value must be between", "line 1"], source="movielens"),
    Case("ids with commas, quotes, newlines and sql",
         {"events.csv": csv([{**r, "user_id": r["user_id"] + ", \"o'brien\"\n'; DROP TABLE runs; --"} for r in events_rows()]), "items.csv": csv(items_rows())},
         [], accepted=True),
    Case("the same id as a number and as text", {"events.parquet": parquet(pd.DataFrame(events_rows()).assign(item_id=lambda f: f.item_id.str[1:].astype(int))),
                                                   "items.csv": csv([{**r, "item_id": r["item_id"][1:]} for r in items_rows()])}, [], accepted=True),
]
