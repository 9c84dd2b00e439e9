"""The reading commands on a warehouse written by hand: what each one shows, with names."""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from recmill import reading, warehouse
from recmill.errors import RecmillError

runner = CliRunner()


def rows(**columns) -> pd.DataFrame:
    return pd.DataFrame(columns)


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    path = tmp_path_factory.mktemp("reading") / "w.duckdb"
    frames = {
        "items": rows(item_id=["i1", "i2", "i3"], name=["Milk", "Bread", "Eggs"], category=["dairy", "bakery", "dairy"],
                      brand=[None, None, None], price=[1.0, 2.0, 3.0]),
        "recommendations": rows(user_id=["u1", "u1", "u1", "u2"], item_id=["i3", "i1", "i9", "i2"], rank=[1, 2, 3, 1],
                                score=[0.9, 0.5, 0.1, 0.7], model="als", model_version="4", reason=["r1", "r2", "r3", "r4"],
                                run_id="run2", generated_at=datetime(2026, 1, 8)),
        "similar_items": rows(item_id=["i1", "i1", "i2", "i1"], similar_item_id=["i3", "i2", "i1", "i2"], rank=[1, 2, 1, 1],
                              score=[0.8, 0.3, 0.6, 0.5], model=["content", "content", "content", "als"], run_id="run2"),
        "segment_profiles": rows(segment=[0, 1], label=["loyal", "new"], size=[10, 30], recency_days=[2.0, 20.0],
                                 frequency=[9.0, 1.0], monetary=[90.0, 5.0], basket_size=[4.0, 2.0],
                                 top_categories=["dairy", "bakery"], run_id="run2"),
        "runs": rows(run_id=["run1", "run2"], started_at=[datetime(2026, 1, 1, 3), datetime(2026, 1, 8, 3)],
                     finished_at=[datetime(2026, 1, 1, 3, 30), datetime(2026, 1, 8, 3, 12)], status=["success", "success"],
                     data_fingerprint=["f1", "f2"], params_json="{}"),
        "model_decisions": rows(run_id=["run1", "run2", "run2"], champion_version=[None, "3", "4"], challenger_version=["3", "4", "4"],
                                metric="ndcg@10", champion_value=[None, 0.1, 0.2], challenger_value=[0.1, 0.2, 0.2], p_value=None,
                                decision=["promote", "promote", "activate"], reasons="", decided_at=datetime(2026, 1, 8)),
        "drift_checks": rows(run_id=["run2", "run2", "run2"], check=["events", "events", "prediction"], column=["value", "item_id", "*"],
                             statistic="psi", value=[0.5, 0.1, 0.2], threshold=0.2, drifted=[True, False, True]),
        "model_metrics": rows(run_id="run2", model=["als", "als", "als", "als", "ease"], model_version="m",
                              split=["test", "test", "valid", "test", "test"], metric=["ndcg", "recall", "ndcg", "ndcg", "ndcg"],
                              k=[10, 10, 10, 5, 10], value=[0.25, 0.4, 0.3, 0.2, 0.9], slice="all"),
    }
    warehouse.publish(path, frames)
    return path


def test_a_users_recommendations_come_with_names_and_stop_at_k(shop):
    top = reading.recommendations(shop, "u1", k=2)
    assert top[["rank", "item_id", "name", "category", "reason"]].values.tolist() == [[1, "i3", "Eggs", "dairy", "r1"], [2, "i1", "Milk", "dairy", "r2"]]
    assert reading.recommendations(shop, "u1", k=10)["name"].isna().tolist() == [False, False, True]  # i9: not in the catalogue


def test_similar_items_come_with_names_by_model(shop):
    assert reading.similar(shop, "i1")[["model", "rank", "item_id", "name"]].values.tolist() == [
        ["als", 1, "i2", "Bread"], ["content", 1, "i3", "Eggs"], ["content", 2, "i2", "Bread"]]
    assert reading.similar(shop, "i1", k=1, model="content")["item_id"].tolist() == ["i3"]


def test_segments_come_largest_first(shop):
    assert reading.segments(shop)[["label", "size"]].values.tolist() == [["new", 30], ["loyal", 10]]


def test_runs_show_the_gate_and_the_drift_flags_newest_first(shop):
    runs = reading.runs(shop)
    assert runs[["run_id", "minutes", "data", "decision", "challenger"]].values.tolist() == [
        ["run2", 12.0, "f2", "promote", "4"], ["run1", 30.0, "f1", "promote", "3"]]
    assert runs["drifted"].tolist()[0] == "events:value, prediction:*" and runs["drifted"].isna().tolist() == [False, True]
    assert reading.runs(shop, last=1)["run_id"].tolist() == ["run2"]


def test_the_champion_is_the_model_that_publishes_with_its_test_figures(shop):
    (champion,) = reading.champion(shop, "ndcg", 10).to_dict("records")
    assert {k: champion[k] for k in ("model", "version", "run_id", "ndcg@10", "recall")} == {
        "model": "als", "version": "4", "run_id": "run2", "ndcg@10": 0.25, "recall": 0.4}  # test split, k 10: not valid, k 5 or ease
    assert pd.isna(champion["precision"]) and pd.isna(champion["coverage"])


def test_unknown_users_items_and_warehouses_are_errors_that_say_so(shop, tmp_path):
    with pytest.raises(RecmillError, match="user 'nobody' has no recommendations"):
        reading.recommendations(shop, "nobody")
    with pytest.raises(RecmillError, match="item 'i3' has no similar items"):
        reading.similar(shop, "i3")
    with pytest.raises(RecmillError, match="no warehouse at"):
        reading.segments(tmp_path / "none.duckdb")


def cli(shop, *args):
    return runner.invoke(app, [*args, "--set", f"publish.warehouse={shop}"])


def test_the_commands_print_tables_or_json_and_fail_in_one_line(shop):
    shown = cli(shop, "recommend", "u1", "--k", "2")
    assert shown.exit_code == 0 and "Eggs" in shown.output and "Milk" in shown.output and "r3" not in shown.output
    assert [r["name"] for r in json.loads(cli(shop, "similar", "i1", "--model", "content", "--json").output)] == ["Eggs", "Bread"]
    assert [r["label"] for r in json.loads(cli(shop, "segments", "--json").output)] == ["new", "loyal"]
    status = json.loads(cli(shop, "status", "--json").output)
    assert [r["run_id"] for r in status["runs"]] == ["run2", "run1"] and status["champion"][0]["ndcg@10"] == 0.25
    table = cli(shop, "status")
    assert table.exit_code == 0 and "events:value" in table.output and "0.25 " in table.output
    missing = cli(shop, "recommend", "nobody")
    assert missing.exit_code == 1 and "user 'nobody' has no recommendations" in missing.output and "Traceback" not in missing.output
