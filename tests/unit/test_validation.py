"""The great-expectations suites: each rule fails on a hand-made bad table with exact rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from recmill.config import ValidationConfig
from recmill.data.tables import Origin, Tables, canonical_events, canonical_items, canonical_users
from recmill.data.validation import check_tables, validate_tables, write_report
from recmill.errors import ValidationFailed

NOW = datetime(2025, 1, 1)
CFG = ValidationConfig(min_events=5, min_users=2, min_items=2, example_rows=2)
# canonical row i is file line i + 2 (header on line 1)
ORIGINS = {"events": Origin(path="events.csv", first_line=2), "items": Origin(path="items.csv", first_line=2)}


def raw_events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2", "u2", "u3", "u3", "u1", "u2"],
            "item_id": ["i1", "i2", "i1", "i3", "i2", "i3", "i3", "i2"],
            "timestamp": pd.date_range("2024-01-01", periods=8, freq="h"),
            "event_type": ["view", "cart", "purchase", "rating", "view", "purchase", "rating", "view"],
            "value": [1.0, 1.0, 1.0, 4.5, 1.0, 1.0, 0.5, 1.0],
            "order_id": [None, None, "o1", None, None, "o2", None, None],
        }
    )


def make_tables(events=None, items=None, users=None) -> Tables:
    events = raw_events() if events is None else events
    if items is None:
        items = pd.DataFrame({"item_id": ["i1", "i2", "i3", "i4"], "price": [1.0, 2.5, 0.0, 3.0]})
    if users is None:
        users = pd.DataFrame({"user_id": ["u1", "u2", "u3"], "age": [30, 40, 50]})
    return Tables(canonical_events(events), canonical_items(items), canonical_users(users), origins=dict(ORIGINS))


def only_failure(report, table="events"):
    assert not report.success
    assert len(report.failures) == 1, [f.description for f in report.failures]
    failure = report.failures[0]
    assert failure.table == table
    return failure


def test_clean_dataset_passes():
    report = validate_tables(make_tables(), CFG, now=NOW)
    assert report.success
    assert report.failures == []
    assert set(report.results) == {"events", "items", "users"}
    assert all(r["success"] for r in report.results.values())
    assert "Validation passed" in report.summary()


def test_default_now_and_aware_now():
    assert validate_tables(make_tables(), CFG).success
    assert validate_tables(make_tables(), CFG, now=datetime(2025, 1, 1, tzinfo=UTC)).success


def test_empty_items_and_users_are_skipped():
    tables = Tables(canonical_events(raw_events()), origins=dict(ORIGINS))
    report = validate_tables(tables, CFG, now=NOW)
    assert report.success
    assert set(report.results) == {"events"}


def _set(rows, column, value):
    def edit(df):
        df[column] = df[column].astype(object)
        df.loc[rows, column] = value
        return df

    return edit


@pytest.mark.parametrize(
    "edit, expectation, column, sentence, rows",
    [
        (_set([1, 4], "user_id", None), "expect_column_values_to_not_be_null", "user_id", "user_id is missing", ["line 3", "line 6"]),
        (_set([2], "item_id", None), "expect_column_values_to_not_be_null", "item_id", "item_id is missing", ["line 4"]),
        (_set([0], "event_type", None), "expect_column_values_to_not_be_null", "event_type", "event_type is missing", ["line 2"]),
        (_set([5], "value", np.nan), "expect_column_values_to_not_be_null", "value", "value is missing", ["line 7"]),
        (
            _set([2, 5], "event_type", "click"),
            "expect_column_values_to_be_in_set",
            "event_type",
            "event_type must be one of view, cart, purchase, rating",
            ["line 4", "line 7"],
        ),
        (
            _set([6], "timestamp", pd.Timestamp("2030-06-01")),
            "expect_column_values_to_be_between",
            "timestamp",
            "timestamp is in the future (after 2025-01-01 00:00:00)",
            ["line 8"],
        ),
        (_set([0, 7], "timestamp", pd.Timestamp("1960-01-01")), "expect_column_values_to_be_between", "timestamp", "timestamp is before 1970-01-02", ["line 2", "line 9"]),
        (_set([3], "value", 7.0), "expect_column_values_to_be_between", "value", "rating value must be between 0.5 and 5.0", ["line 5"]),
        (_set([6], "value", 0.0), "expect_column_values_to_be_between", "value", "rating value must be between 0.5 and 5.0", ["line 8"]),
        (_set([0], "value", -1.0), "expect_column_values_to_be_between", "value", "value must be a finite number >= 0", ["line 2"]),
        (_set([2], "value", np.inf), "expect_column_values_to_be_between", "value", "value must be a finite number >= 0", ["line 4"]),
        (_set([1, 7], "item_id", "i99"), "expect_column_values_to_be_in_set", "item_id", "item_id not found in the items table", ["line 3", "line 9"]),
    ],
)
def test_row_rule_fails_with_exact_rows(edit, expectation, column, sentence, rows):
    report = validate_tables(make_tables(edit(raw_events())), CFG, now=NOW)
    failure = only_failure(report)
    assert failure.expectation == expectation
    assert failure.column == column
    assert failure.description.startswith(sentence)
    assert failure.unexpected_count == len(rows)
    assert failure.rows == rows
    assert len(failure.examples) == min(len(rows), CFG.example_rows)
    assert list(failure.examples.index) == [int(r.split()[1]) - 2 for r in rows][: CFG.example_rows]
    summary = report.summary()
    assert "events.csv" in summary
    assert sentence in summary
    assert f"({'lines' if len(rows) > 1 else 'line'} {', '.join(r.split()[1] for r in rows)})" in summary


def test_rating_range_follows_config():
    cfg = CFG.model_copy(update={"rating_min": 1.0, "rating_max": 10.0})
    failure = only_failure(validate_tables(make_tables(), cfg, now=NOW))
    assert failure.description == "rating value must be between 1.0 and 10.0"
    assert failure.rows == ["line 8"]  # the 0.5 rating
    assert failure.element_count == 2  # only rating events are checked


def test_exact_duplicates_treat_missing_order_id_as_equal():
    events = raw_events()
    extra = events.iloc[[0, 2]].copy()  # row 0 has no order_id, row 2 has 'o1'
    extra.loc[2, "order_id"] = None  # differs from row 2 only by a missing order_id: not a duplicate
    events = pd.concat([events, extra], ignore_index=True)
    failure = only_failure(validate_tables(make_tables(events), CFG, now=NOW))
    assert failure.expectation == "expect_compound_columns_to_be_unique"
    assert failure.column is None
    assert failure.description.startswith("exact duplicate events")
    # every copy counts: the original (line 2) and the repeat (line 10)
    assert failure.unexpected_count == 2
    assert failure.rows == ["line 2", "line 10"]


def test_missing_column_and_wrong_types():
    tables = make_tables()
    tables.events = tables.events.drop(columns=["order_id"])
    failure = only_failure(validate_tables(tables, CFG, now=NOW))
    assert (failure.expectation, failure.column) == ("expect_column_to_exist", "order_id")
    assert failure.description == "column 'order_id' is missing"

    tables = make_tables()
    tables.events["timestamp"] = tables.events["timestamp"].astype(str)
    tables.events["value"] = tables.events["value"].astype(str)
    report = validate_tables(tables, CFG, now=NOW)
    assert not report.success
    by_column = {f.column: f for f in report.failures}
    assert set(by_column) == {"timestamp", "value"}
    assert by_column["timestamp"].expectation == "expect_column_values_to_be_in_type_list"
    assert by_column["timestamp"].description.startswith("timestamp must be a datetime")
    assert by_column["value"].description.startswith("value must be numeric")
    # text where a number belongs: every row with a value fails, and the examples show them
    assert (by_column["value"].unexpected_count, by_column["value"].rows[:2]) == (8, ["line 2", "line 3"])
    assert by_column["value"].examples["value"].tolist() == ["1.0", "1.0"]


@pytest.mark.parametrize(
    "update, sentence",
    [
        ({"min_events": 50}, "too few events to train: 8, need at least 50"),
        ({"min_users": 4}, "too few users to train: 3, need at least 4"),
        ({"min_items": 5}, "too few items to train: 3, need at least 5"),
    ],
)
def test_too_little_data(update, sentence):
    report = validate_tables(make_tables(), CFG.model_copy(update=update), now=NOW)
    failure = only_failure(report)
    assert failure.description == sentence
    assert failure.unexpected_count is None
    assert failure.rows == []
    assert sentence in report.summary()


def test_items_rules():
    items = pd.DataFrame({"item_id": ["i1", "i2", "i3", "i3", None], "price": [1.0, -2.0, 3.0, 4.0, 5.0]})
    report = validate_tables(make_tables(items=items), CFG, now=NOW)
    assert not report.success
    got = {(f.expectation, f.column): f for f in report.failures}
    assert {f.table for f in report.failures} == {"items"}
    assert got["expect_column_values_to_not_be_null", "item_id"].rows == ["line 6"]
    unique = got["expect_column_values_to_be_unique", "item_id"]
    assert (unique.description, unique.unexpected_count, unique.rows) == ("item_id is not unique", 2, ["line 4", "line 5"])
    price = got["expect_column_values_to_be_between", "price"]
    assert (price.description, price.rows) == ("price must be >= 0", ["line 3"])
    assert len(report.failures) == 3
    assert "Validation failed: 3 of 4 expectations on items (items.csv)" in report.summary()


def test_users_rules_without_origin():
    users = pd.DataFrame({"user_id": ["u1", "u2", "u2", None]})
    report = validate_tables(make_tables(users=users), CFG, now=NOW)
    got = {f.expectation: f for f in report.failures}
    assert set(got) == {"expect_column_values_to_not_be_null", "expect_column_values_to_be_unique"}
    assert got["expect_column_values_to_be_unique"].rows == ["row 1", "row 2"]  # no origin: row numbers
    assert got["expect_column_values_to_not_be_null"].rows == ["row 3"]


def test_summary_lists_counts_and_example_rows():
    events = _set([2, 5], "event_type", "click")(raw_events())
    summary = validate_tables(make_tables(events), CFG, now=NOW).summary()
    assert summary.splitlines()[0].startswith("Validation failed: 1 of ")
    assert summary.splitlines()[0].endswith(" expectations on events (events.csv)")
    assert "- event_type must be one of view, cart, purchase, rating: 2 of 8 rows fail (lines 4, 7)" in summary
    assert "click" in summary  # the example rows are printed


def test_check_tables_writes_report_and_raises(tmp_path):
    events = _set([2, 5], "event_type", "click")(raw_events())
    with pytest.raises(ValidationFailed) as err:
        check_tables(make_tables(events), CFG, tmp_path / "reports", now=NOW)
    json_path = tmp_path / "reports" / "validation_result.json"
    summary = (tmp_path / "reports" / "summary.txt").read_text()
    assert "event_type must be one of view, cart, purchase, rating" in summary
    assert summary.strip() in str(err.value)
    assert err.value.report_path == str(json_path)
    data = json.loads(json_path.read_text())
    assert data["success"] is False
    assert data["failures"][0]["rows"] == ["line 4", "line 7"]
    assert data["failures"][0]["examples"][0]["event_type"] == "click"
    assert data["results"]["events"]["success"] is False


def test_good_dataset_writes_success(tmp_path):
    report = check_tables(make_tables(), CFG, tmp_path, now=NOW)
    assert report.success
    data = json.loads((tmp_path / "validation_result.json").read_text())
    assert data["success"] is True
    assert data["failures"] == []
    assert set(data["results"]) == {"events", "items", "users"}
    assert (tmp_path / "summary.txt").read_text().startswith("Validation passed")


def test_write_report_returns_json_path(tmp_path):
    report = validate_tables(make_tables(), CFG, now=NOW)
    path = write_report(report, tmp_path / "a" / "b")
    assert path == tmp_path / "a" / "b" / "validation_result.json"
    assert path.exists()
