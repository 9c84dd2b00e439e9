"""`recmill refresh` between retrains: new events reach their users' rows, and only theirs."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from recmill import reading, warehouse
from recmill.io import read_frame
from recmill.runtime import one_run_at_a_time
from tests.integration.conftest import TINY

pytestmark = pytest.mark.slow
runner = CliRunner()
SETTINGS = [*TINY, "train.models=[popularity, als, reorder]"]
DB = "warehouse/recmill.duckdb"


def recmill(*args: str):
    command = list(args)
    for setting in SETTINGS:
        command += ["--set", setting]
    return runner.invoke(app, command, catch_exceptions=False)


def table(name: str) -> pd.DataFrame:
    return warehouse.query(DB, f"SELECT * FROM {name} ORDER BY user_id, rank")


def arrive(workdir, name: str, rows: list[tuple[str, str, pd.Timestamp]]) -> None:
    increments = workdir / "data" / "increments"
    increments.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).assign(event_type="purchase")
    frame.to_csv(increments / name, index=False)


def test_refresh_republishes_the_rows_of_the_users_with_new_events_only(prefect_server, workdir):
    assert recmill("run").exit_code == 0
    recs, buy_again = table("recommendations"), table("buy_again")
    user = buy_again["user_id"].iloc[0]
    bought = list(recs.loc[recs["user_id"] == user, "item_id"].iloc[:2])  # their top two, bought now
    newcomer_items = sorted(recs["item_id"].unique())[:3]
    now = pd.Timestamp.now("UTC").tz_localize(None)
    arrive(workdir, "day1.csv", [(user, item, now - pd.Timedelta(hours=2)) for item in bought]
           + [("newcomer", item, now - pd.Timedelta(hours=1)) for item in newcomer_items])

    result = recmill("refresh")
    assert result.exit_code == 0, result.output
    assert "5 new events of 2 users" in result.output
    after_recs, after_buy = table("recommendations"), table("buy_again")
    changed = [user, "newcomer"]
    for before, after in ((recs, after_recs), (buy_again, after_buy)):
        pd.testing.assert_frame_equal(after[~after["user_id"].isin(changed)].reset_index(drop=True), before[~before["user_id"].isin(changed)].reset_index(drop=True))
    (run_id,) = warehouse.query(DB, "SELECT run_id FROM runs WHERE status = 'refreshed'")["run_id"]
    assert list(reading.champion(DB)["run_id"]) == [warehouse.last_retrain(DB)] != [run_id]  # its figures are the retrain's
    mine = after_recs[after_recs["user_id"] == user]
    assert set(mine["run_id"]) == {run_id} and len(mine) == len(recs[recs["user_id"] == user])
    assert not set(bought) & set(mine["item_id"])
    assert set(bought) <= set(after_buy.loc[after_buy["user_id"] == user, "item_id"])  # bought before now: buy-again candidates
    newcomer = after_recs[after_recs["user_id"] == "newcomer"]
    assert list(newcomer["rank"]) == list(range(1, len(mine) + 1)) and not set(newcomer_items) & set(newcomer["item_id"])
    assert set(after_buy.loc[after_buy["user_id"] == "newcomer", "item_id"]) == set(newcomer_items)

    # nothing new: nothing changes; then one more event of the newcomer, folded with their earlier ones
    assert "Nothing refreshed: no new events" in recmill("refresh").output
    arrive(workdir, "late.csv", [("someone", "an item", now + pd.Timedelta(days=2))])
    result = recmill("refresh")
    assert result.exit_code == 1 and "late.csv, column 'timestamp', line 2" in result.output and "in the future" in result.output
    (workdir / "data" / "increments" / "late.csv").unlink()
    pd.testing.assert_frame_equal(table("recommendations"), after_recs)
    arrive(workdir, "day2.csv", [("newcomer", newcomer["item_id"].iloc[0], now - pd.Timedelta(minutes=30))])
    assert "1 new events of 1 users" in recmill("refresh").output
    again = table("recommendations")
    assert not {*newcomer_items, newcomer["item_id"].iloc[0]} & set(again.loc[again["user_id"] == "newcomer", "item_id"])
    pd.testing.assert_frame_equal(again[again["user_id"] != "newcomer"].reset_index(drop=True),
                                  after_recs[after_recs["user_id"] != "newcomer"].reset_index(drop=True))

    # while a retrain holds the data folder, a refresh does nothing and says why
    with one_run_at_a_time(workdir / "data" / ".run.lock"):
        result = recmill("refresh")
    assert result.exit_code == 0 and "Nothing refreshed: another recmill run is using" in result.output

    # the next retrain learns from the increments with the source's events
    result = recmill("run")
    assert result.exit_code == 0, result.output
    events = read_frame(workdir / "data" / "canonical" / "events.parquet")
    assert (events["user_id"] == "newcomer").sum() == 4 and not (workdir / "data" / "refresh" / "events.parquet").exists()
    retrained = table("recommendations")
    assert retrained["run_id"].nunique() == 1 and "newcomer" in set(retrained["user_id"])
