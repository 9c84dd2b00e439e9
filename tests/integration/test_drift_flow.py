"""Drift against the champion's data: none on the same data, flagged when a category's sales jump."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from recmill import warehouse
from recmill.drift import shift_category
from tests.integration.conftest import TINY

pytestmark = pytest.mark.slow
runner = CliRunner()


def run(*overrides: str) -> dict:
    args = ["run"]
    for o in [*TINY, "train.models=[popularity]", *overrides]:
        args += ["--set", o]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(open("reports/drift/summary.json").read())


def as_files(folder, events, items, users):
    folder.mkdir()
    events.assign(timestamp=events.timestamp.astype("int64") // 10**9).to_csv(folder / "events.csv", index=False)
    items.to_csv(folder / "items.csv", index=False)
    users.to_csv(folder / "users.csv", index=False)
    return ["data.source=files", f"data.path={folder}"]


def test_a_category_multiplied_is_flagged(prefect_server, workdir):
    first = run()
    assert first["reference_run"] is None and first["rows"] == [] and not first["severe"]

    canonical = workdir / "data" / "canonical"
    events, items, users = (pd.read_parquet(canonical / f"{t}.parquet") for t in ("events", "items", "users"))
    same = run(*as_files(workdir / "same", events, items, users))
    assert same["reference_run"] is not None and not same["drifted"], same["summary"]
    assert same["summary"] == "no data set drifted"

    bought = events[events.event_type == "purchase"].merge(items, on="item_id")
    top = bought["category"].value_counts().index[0]
    shifted = shift_category(events, items, top, 5, seed=1)
    moved = run(*as_files(workdir / "shifted", shifted, items, users))
    assert moved["drifted"] and "events:" in moved["summary"] and "category" in moved["summary"]
    assert (workdir / "reports" / "drift" / "events.html").exists()
    json.loads((workdir / "reports" / "drift" / "events.json").read_text())

    db = workdir / "warehouse" / "recmill.duckdb"
    checks = warehouse.query(db, 'SELECT * FROM drift_checks WHERE "check" = \'events\' AND "column" = \'category\'')
    assert checks["drifted"].tolist() == [False, True]  # the run on the same data, then the shifted one
    prediction = warehouse.query(db, 'SELECT DISTINCT "check" FROM drift_checks')["check"]
    assert "prediction" in set(prediction)
