"""Validation out of core: the parquet files in the stage give the same report as the frames."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from recmill.data.validation import ROW_LABELS, SHOWN_ROWS, check_files, validate_files, validate_tables
from recmill.errors import ValidationFailed
from recmill.io import Layout, write_tables
from recmill.settings import load_settings
from tests.unit.test_validation import CFG, NOW, _set, make_tables, raw_events

EVIL = "x'; drop table events; --"


def same_report(tables, tmp_path, cfg=CFG):
    """validate_files on the tables as written by the ingest stage; checks it matches validate_tables."""
    write_tables(tmp_path / "canonical", tables)
    on_files = validate_files(tmp_path / "canonical", cfg, now=NOW, memory_limit="500MB", threads=2, temp_directory=tmp_path / "spill")
    on_frames = validate_tables(tables, cfg, now=NOW)
    assert on_files.to_dict()["failures"] == on_frames.to_dict()["failures"]
    assert on_files.summary() == on_frames.summary()
    assert on_files.success == on_frames.success
    return on_files


def dups(events):
    return pd.concat([events, events.iloc[[0, 3, 3]]], ignore_index=True)


@pytest.mark.parametrize(
    "edit",
    [
        lambda e: e,
        _set([1, 4], "user_id", None),
        _set([5], "value", np.nan),
        _set([2, 5], "event_type", "click"),
        _set([6], "timestamp", pd.Timestamp("2030-06-01")),
        _set([0, 7], "timestamp", pd.Timestamp("1960-01-01")),
        _set([3], "value", 7.0),
        _set([2], "value", np.inf),
        _set([1, 7], "item_id", "i99"),
        dups,
    ],
)
def test_files_give_the_report_of_the_frames(edit, tmp_path):
    same_report(make_tables(edit(raw_events())), tmp_path)


def test_files_without_items_users_or_origins(tmp_path):
    tables = make_tables()
    tables.items, tables.users, tables.origins = tables.items.iloc[:0], tables.users.iloc[:0], {}
    tables.events.loc[3, "event_type"] = "click"
    report = same_report(tables, tmp_path)
    assert set(report.results) == {"events"}
    assert report.failures[0].rows == ["row 3"]  # no origin: row numbers


def test_row_labels_are_the_file_lines_of_origins_json(tmp_path):
    tables = make_tables(_set([2, 5], "event_type", "click")(raw_events()))
    write_tables(tmp_path, tables)
    origins = json.loads((tmp_path / "origins.json").read_text())
    origins["events"] = {"path": "raw/orders.txt", "first_line": 1}  # a file without a header
    (tmp_path / "origins.json").write_text(json.dumps(origins))
    report = validate_files(tmp_path, CFG, now=NOW)
    assert report.failures[0].rows == ["line 3", "line 6"]
    assert list(report.failures[0].examples.index) == [2, 5]
    assert "Validation failed: 1 of 23 expectations on events (raw/orders.txt)" in report.summary()


def test_identifiers_with_quotes_and_sql_are_reported_verbatim(tmp_path):
    events = _set([1], "item_id", EVIL)(_set([2], "user_id", 'u"2')(raw_events()))
    items = pd.DataFrame({"item_id": ["i1", "i2", "i3", 'i"4', "o'5"], "price": [1.0, 2.5, 0.0, 3.0, 1.0]})
    where = tmp_path / "it's here"
    report = same_report(make_tables(events, items=items), where)
    failure = report.failures[0]
    assert len(report.failures) == 1
    assert (failure.description, failure.rows) == ("item_id not found in the items table", ["line 3"])
    assert failure.examples["item_id"].tolist() == [EVIL]
    assert EVIL in report.summary()
    assert validate_files(where / "canonical", CFG, now=NOW).failures[0].unexpected_count == 1  # the table is still there


def test_count_is_exact_beyond_the_labelled_rows(tmp_path):
    n = ROW_LABELS + 1500
    events = pd.concat([raw_events()] * (n // 8 + 1), ignore_index=True).iloc[:n]
    events["timestamp"] = pd.date_range("2024-01-01", periods=n, freq="min")  # no duplicates
    events["event_type"] = "click"
    tables = make_tables(events)
    write_tables(tmp_path, tables)
    failure = validate_files(tmp_path, CFG, now=NOW).failures[0]
    assert (failure.unexpected_count, failure.element_count) == (n, n)
    assert failure.rows == [f"line {i + 2}" for i in range(ROW_LABELS)]
    assert len(failure.examples) == CFG.example_rows
    assert failure.headline().endswith(f", ... {n - SHOWN_ROWS} more)")


def test_validate_stage_checks_the_canonical_files(tmp_path):
    settings = load_settings(None, [f"paths.data={tmp_path / 'data'}", f"paths.reports={tmp_path / 'reports'}", "validation.min_events=5", "validation.min_users=2", "validation.min_items=2"])
    layout = Layout(settings)
    from pipelines import validate

    write_tables(layout.canonical, make_tables())
    assert validate.run(settings)["success"] is True

    write_tables(layout.canonical, make_tables(_set([2, 5], "event_type", "click")(raw_events())))
    with pytest.raises(ValidationFailed, match=r"event_type must be one of .*\(lines 4, 7\)"):
        validate.run(settings)
    data = json.loads((layout.validation / "validation_result.json").read_text())
    assert data["failures"][0]["rows"] == ["line 4", "line 7"]
    assert (layout.validation / "summary.txt").read_text().startswith("Validation failed")


def test_check_files_raises_with_the_report(tmp_path):
    write_tables(tmp_path / "c", make_tables(_set([0], "value", -1.0)(raw_events())))
    with pytest.raises(ValidationFailed) as err:
        check_files(tmp_path / "c", CFG, tmp_path / "r", now=NOW, memory_limit="1GB", threads=1)
    assert err.value.report_path == str(tmp_path / "r" / "validation_result.json")
    assert "value must be a finite number >= 0 for non-rating events: 1 of 6 rows fail (line 2)" in str(err.value)
    assert json.loads((tmp_path / "r" / "validation_result.json").read_text())["failures"][0]["examples"][0]["value"] == -1.0
