"""File-based sources on small fixtures written in each public format."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recmill.data.sources import load_source
from recmill.data.sources.files import load_files, load_increments
from recmill.data.sources.instacart import load_instacart
from recmill.data.sources.movielens import load_movielens
from recmill.errors import DataLoadError

REAL_ML100K = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "ml-100k"


def write(directory: Path, files: dict[str, str], encoding: str = "utf8") -> Path:
    for name, text in files.items():
        (directory / name).write_text(text, encoding=encoding)
    return directory


def column(df: pd.DataFrame, name: str) -> list:
    return [None if pd.isna(v) else v for v in df[name]]


def ts(*values: str) -> list[pd.Timestamp]:
    return [pd.Timestamp(v) for v in values]


# --- instacart -------------------------------------------------------------------------

INSTACART = {
    # user 1's orders are listed out of sequence: times follow order_number, not file order
    "orders.csv": "order_id,user_id,eval_set,order_number,order_dow,order_hour_of_day,days_since_prior_order\n"
    "12,1,train,3,1,10,14.0\n"
    "10,1,prior,1,2,8,\n"
    "11,1,prior,2,3,9,7.0\n"
    "20,2,prior,1,0,23,\n"
    "21,2,test,2,4,7,30.0\n",
    "order_products__prior.csv": "order_id,product_id,add_to_cart_order,reordered\n"
    "10,196,1,0\n"
    "10,007,2,0\n"
    "11,196,1,1\n"
    "20,5,1,0\n",
    "order_products__train.csv": "order_id,product_id,add_to_cart_order,reordered\n12,5,2,0\n12,196,1,1\n",
    "products.csv": 'product_id,product_name,aisle_id,department_id\n196,Soda,77,7\n007,Bag of Organic Bananas,24,4\n5,"Salt, Sea",104,13\n',
    "aisles.csv": "aisle_id,aisle\n24,fresh fruits\n77,soft drinks\n104,spices seasonings\n",
    "departments.csv": "department_id,department\n4,produce\n7,beverages\n13,pantry\n",
}


def test_instacart_events_items_users(tmp_path):
    tables = load_instacart(write(tmp_path, INSTACART))
    events = tables.events
    assert column(events, "user_id") == ["1", "1", "1", "2", "1", "1"]
    assert column(events, "item_id") == ["196", "007", "196", "5", "5", "196"]
    assert column(events, "order_id") == ["10", "10", "11", "20", "12", "12"]
    # anchor 2017-01-01 + cumulative days + hour of day + add_to_cart_order seconds
    assert list(events["timestamp"]) == ts(
        "2017-01-01 08:00:01", "2017-01-01 08:00:02", "2017-01-08 09:00:01",
        "2017-01-01 23:00:01", "2017-01-22 10:00:02", "2017-01-22 10:00:01",
    )
    assert set(events["event_type"]) == {"purchase"} and set(events["value"]) == {1.0}
    assert events["timestamp"].dtype == "datetime64[ns]"

    items = tables.items
    assert column(items, "item_id") == ["196", "007", "5"]
    assert column(items, "name") == ["Soda", "Bag of Organic Bananas", "Salt, Sea"]
    assert column(items, "category") == ["soft drinks", "fresh fruits", "spices seasonings"]
    assert column(items, "aisle") == column(items, "category")
    assert column(items, "department") == ["beverages", "produce", "pantry"]
    assert column(tables.users, "user_id") == ["1", "2"]
    assert tables.origins["items"].first_line == 2 and tables.origins["items"].path.endswith("products.csv")


def test_instacart_missing_file_lists_directory(tmp_path):
    files = dict(INSTACART)
    del files["aisles.csv"]
    with pytest.raises(DataLoadError) as err:
        load_instacart(write(tmp_path, files))
    message = str(err.value)
    assert str(tmp_path) in message and "aisles.csv" in message
    assert "the directory has departments.csv, order_products__prior.csv" in message


def test_instacart_missing_column(tmp_path):
    files = dict(INSTACART, **{"orders.csv": "order_id,user_id,eval_set,order_number,order_hour_of_day\n10,1,prior,1,8\n"})
    with pytest.raises(DataLoadError) as err:
        load_instacart(write(tmp_path, files))
    assert err.value.path.endswith("orders.csv")
    assert err.value.column == "days_since_prior_order" and err.value.rows == [1]
    assert "found columns: order_id, user_id, eval_set, order_number, order_hour_of_day" in str(err.value)


def test_instacart_non_numeric_cart_order_names_lines(tmp_path):
    files = dict(INSTACART, **{"order_products__prior.csv": "order_id,product_id,add_to_cart_order,reordered\n10,196,1,0\n10,7,two,0\n11,196,x,1\n"})
    with pytest.raises(DataLoadError) as err:
        load_instacart(write(tmp_path, files))
    assert err.value.path.endswith("order_products__prior.csv")
    assert err.value.column == "add_to_cart_order" and err.value.rows == [3, 4]
    assert "'two'" in str(err.value)


# --- movielens -------------------------------------------------------------------------

def flags(*genres: int) -> str:
    return "|".join("1" if i in genres else "0" for i in range(19))


GROUPLENS = {
    "u.data": "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t543\t1\t878887116\n",
    "u.item": f"242|Kolya (1996)|24-Jan-1997||http://us.imdb.com/M/title-exact?Kolya%20(1996)|{flags(5)}\n"
    f"302|L.A. Confidential (1997)|01-Jan-1997||http://us.imdb.com/M/title-exact?L%2EA%2E+Confidential+(1997)|{flags(6, 10, 13, 16)}\n"
    f"543|Misérables, Les (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Mis%E9rables%2C%20Les%20%281995%29|{flags(8, 12)}\n",
    "u.user": "22|25|M|writer|40206\n186|39|F|executive|00000\n196|49|M|writer|55105\n",
}
RECBOLE = {
    "ml-100k.inter": "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t543\t1\t878887116\n",
    "ml-100k.item": "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
    "242\tKolya\t1996\tComedy\n302\tL.A. Confidential\t1997\tCrime Film-Noir Mystery Thriller\n"
    "543\tMisérables, Les\t1995\tDrama Musical\n",
    "ml-100k.user": "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
    "22\t25\tM\twriter\t40206\n186\t39\tF\texecutive\t00000\n196\t49\tM\twriter\t55105\n",
}


def check_movielens(tables):
    events = tables.events
    assert column(events, "user_id") == ["196", "186", "22"]
    assert column(events, "item_id") == ["242", "302", "543"]
    assert column(events, "value") == [3.0, 3.0, 1.0]
    assert set(events["event_type"]) == {"rating"} and events["order_id"].isna().all()
    assert list(events["timestamp"]) == ts("1997-12-04 15:55:49", "1998-04-04 19:22:22", "1997-11-07 07:18:36")
    items = tables.items
    assert column(items, "item_id") == ["242", "302", "543"]
    assert column(items, "name") == ["Kolya", "L.A. Confidential", "Misérables, Les"]
    assert column(items, "category") == ["Comedy", "Crime", "Drama"]
    assert column(items, "tags") == ["Comedy", "Crime Film-Noir Mystery Thriller", "Drama Musical"]
    assert column(items, "release_year") == [1996, 1997, 1995]
    users = tables.users
    assert column(users, "user_id") == ["22", "186", "196"]
    assert column(users, "age") == [25, 39, 49]
    assert column(users, "gender") == ["M", "F", "M"]
    assert column(users, "occupation") == ["writer", "executive", "writer"]
    assert column(users, "zip_code") == ["40206", "00000", "55105"]


def test_movielens_grouplens(tmp_path):
    write(tmp_path, {"u.data": GROUPLENS["u.data"], "u.user": GROUPLENS["u.user"]})
    write(tmp_path, {"u.item": GROUPLENS["u.item"]}, encoding="latin1")
    tables = load_movielens(tmp_path)
    check_movielens(tables)
    assert tables.origins["events"].first_line == 1


def test_movielens_recbole(tmp_path):
    tables = load_movielens(write(tmp_path, RECBOLE))
    check_movielens(tables)
    assert tables.origins["events"].first_line == 2


def test_movielens_formats_agree(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    write(tmp_path / "a", {"u.data": GROUPLENS["u.data"], "u.user": GROUPLENS["u.user"]})
    write(tmp_path / "a", {"u.item": GROUPLENS["u.item"]}, encoding="latin1")
    assert load_movielens(tmp_path / "a").fingerprint() == load_movielens(write(tmp_path / "b", RECBOLE)).fingerprint()


def test_movielens_neither_format(tmp_path):
    write(tmp_path, {"ratings.txt": "1 2 3\n"})
    with pytest.raises(DataLoadError) as err:
        load_movielens(tmp_path)
    assert "u.data" in str(err.value) and ".inter" in str(err.value) and "ratings.txt" in str(err.value)


def test_movielens_bad_rating_and_timestamp(tmp_path):
    bad = RECBOLE["ml-100k.inter"].replace("\t1\t878887116", "\tgood\t878887116")
    with pytest.raises(DataLoadError) as err:
        load_movielens(write(tmp_path, {"ml-100k.inter": bad}))
    assert err.value.column == "rating" and err.value.rows == [4] and err.value.path.endswith("ml-100k.inter")

    write(tmp_path, {"u.data": "1\t2\t3\tyesterday\n1\t3\t4\t881250949\n"})
    with pytest.raises(DataLoadError) as err:
        load_movielens(tmp_path)
    assert err.value.column == "timestamp" and err.value.rows == [1] and err.value.path.endswith("u.data")


@pytest.mark.skipif(not (REAL_ML100K / "ml-100k.inter").exists(), reason="the real ml-100k copy is not present")
def test_movielens_real_recbole_copy():
    tables = load_movielens(REAL_ML100K)
    assert len(tables.events) == 100_000
    assert len(tables.users) == 943 and len(tables.items) == 1682
    assert tables.events["user_id"].nunique() == 943 and tables.events["item_id"].nunique() == 1682
    assert tables.events["value"].between(1, 5).all()
    assert tables.items.set_index("item_id").loc["1", "tags"] == "Animation Children's Comedy"


# --- files -----------------------------------------------------------------------------

EVENTS_CSV = (
    "user_id,item_id,timestamp,event_type,value,order_id\n"
    "007,A1,2026-01-31T12:00:00Z,view,,\n"
    "007,A1,1769860800,purchase,2,o-1\n"
    ",B2,2026-01-31T14:00:00+02:00,click,1,\n"
    "42,B2,2026-01-31 12:00,purchase,1.5,0099\n"
)


def test_files_csv_passes_rows_through(tmp_path):
    write(tmp_path, {
        "events.csv": EVENTS_CSV,
        "items.csv": 'item_id,name,price,color\nA1,Apple,1.5,red\nB2,"Pear, green",-2,green\n',
        "users.csv": "user_id,age\n007,30\n42,\n",
    })
    tables = load_files(tmp_path)
    events = tables.events
    assert column(events, "user_id") == ["007", "007", None, "42"]
    assert column(events, "item_id") == ["A1", "A1", "B2", "B2"]
    assert list(events["timestamp"]) == ts("2026-01-31 12:00") * 4
    assert column(events, "event_type") == ["view", "purchase", "click", "purchase"]
    assert column(events, "value") == [None, 2.0, 1.0, 1.5]
    assert column(events, "order_id") == [None, "o-1", None, "0099"]
    assert column(tables.items, "item_id") == ["A1", "B2"]
    assert column(tables.items, "price") == [1.5, -2.0]
    assert column(tables.items, "color") == ["red", "green"]
    assert column(tables.users, "user_id") == ["007", "42"]
    assert tables.origins["events"].first_line == 2


def test_files_parquet_defaults(tmp_path):
    pd.DataFrame({"user_id": [7, 8], "item_id": ["x", "y"], "timestamp": [0, 86_400]}).to_parquet(tmp_path / "events.parquet")
    tables = load_source("files", tmp_path)
    events = tables.events
    assert column(events, "user_id") == ["7", "8"]
    assert list(events["timestamp"]) == ts("1970-01-01", "1970-01-02")
    assert column(events, "event_type") == ["purchase", "purchase"]
    assert column(events, "value") == [1.0, 1.0] and events["order_id"].isna().all()
    assert tables.origins["events"].first_line is None
    assert list(tables.items.columns) == ["item_id"] and len(tables.items) == 0


def test_files_missing_events(tmp_path):
    write(tmp_path, {"items.csv": "item_id\n1\n"})
    with pytest.raises(DataLoadError) as err:
        load_files(tmp_path)
    assert "events.csv or events.parquet" in str(err.value) and "the directory has items.csv" in str(err.value)


def test_files_missing_column(tmp_path):
    write(tmp_path, {"events.csv": "user_id,timestamp\n1,0\n"})
    with pytest.raises(DataLoadError) as err:
        load_files(tmp_path)
    assert str(err.value) == (
        f"{tmp_path / 'events.csv'}, column 'item_id', line 1: missing required column 'item_id'; "
        "found columns: user_id, timestamp"
    )


def test_files_bad_timestamps_name_lines(tmp_path):
    write(tmp_path, {"events.csv": "user_id,item_id,timestamp\n1,a,0\n1,b,not a date\n2,a,2026-02-30\n2,b,2026-01-01\n"})
    with pytest.raises(DataLoadError) as err:
        load_files(tmp_path)
    assert err.value.path == str(tmp_path / "events.csv")
    assert err.value.column == "timestamp" and err.value.rows == [3, 4]
    assert "'not a date'" in str(err.value)


def test_files_bad_value_and_price(tmp_path):
    write(tmp_path, {"events.csv": "user_id,item_id,timestamp,value\n1,a,0,1\n1,b,0,1\n1,c,0,lots\n"})
    with pytest.raises(DataLoadError) as err:
        load_files(tmp_path)
    assert err.value.column == "value" and err.value.rows == [4]

    write(tmp_path, {"events.csv": "user_id,item_id,timestamp\n1,a,0\n", "items.csv": "item_id,price\na,cheap\n"})
    with pytest.raises(DataLoadError) as err:
        load_files(tmp_path)
    assert err.value.path.endswith("items.csv") and err.value.column == "price" and err.value.rows == [2]


def test_files_parquet_errors_name_row_indexes(tmp_path):
    pd.DataFrame({"user_id": ["1", "2"], "item_id": ["a", "b"], "timestamp": ["2026-01-01", "soon"]}).to_parquet(tmp_path / "events.parquet")
    with pytest.raises(DataLoadError) as err:
        load_files(tmp_path)
    assert err.value.column == "timestamp" and err.value.rows == [1]


def test_load_source_dispatch(tmp_path):
    assert load_source("synthetic", None, preset="tiny", seed=1).fingerprint() == load_source("synthetic", tmp_path, preset="tiny", seed=1).fingerprint()
    with pytest.raises(ValueError, match="synthetic, instacart, movielens, files"):
        load_source("kaggle", tmp_path)
    with pytest.raises(ValueError, match="movielens"):
        load_source("movielens", None)
    assert np.array_equal(load_source("instacart", write(tmp_path, INSTACART)).events["item_id"], load_instacart(tmp_path).events["item_id"])


def test_increments_are_every_event_file_in_name_order(tmp_path):
    assert load_increments(tmp_path / "absent").empty
    (tmp_path / "b.csv").write_text("user_id,item_id,timestamp,event_type\nu2,i2,2026-01-02T00:00:00,view\n")
    pd.DataFrame({"user_id": ["u1"], "item_id": ["i1"], "timestamp": [pd.Timestamp("2026-01-01")]}).to_parquet(tmp_path / "a.parquet")
    (tmp_path / "notes.txt").write_text("not events")
    events = load_increments(tmp_path)
    assert list(events["user_id"]) == ["u1", "u2"] and list(events["event_type"]) == ["purchase", "view"]
    assert list(events["timestamp"]) == [pd.Timestamp("2026-01-01"), pd.Timestamp("2026-01-02")]


@pytest.mark.parametrize(("rows", "message"), [
    ("u1,i1,2026-01-01,purchase\n,i2,2026-01-01,purchase\n", "day.csv, column 'user_id', line 3: 1 row(s) where user_id has no user id"),
    ("u1,i1,2026-01-01,purchase\nu1,i2,2026-01-01,bought\nu1,i3,2026-01-01,clicked\n", "column 'event_type', lines 3, 4: 2 row(s) where event_type is not one of view"),
    ("u1,i1,2200-01-01,purchase\n", "column 'timestamp', line 2: 1 row(s) where timestamp is in the future"),
])
def test_a_bad_increment_names_the_file_column_and_lines(tmp_path, rows, message):
    (tmp_path / "day.csv").write_text("user_id,item_id,timestamp,event_type\n" + rows)
    with pytest.raises(DataLoadError, match=re.escape(message)):
        load_increments(tmp_path)
