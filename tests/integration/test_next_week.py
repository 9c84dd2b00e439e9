"""The next week's run on every source: two weekly runs, new events landing between them,
both gated and drift-checked against the week before."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from recmill import warehouse
from recmill.data.sources.synthetic import generate
from tests.conftest import SHARED_ML100K
from tests.integration.conftest import TINY

pytestmark = pytest.mark.slow
runner = CliRunner()
MODELS = ["train.models=[popularity, als]"]
DAY = pd.Timedelta(days=1)


def run(*overrides: str) -> dict:
    args = ["run"]
    for o in [*TINY, *MODELS, *overrides]:
        args += ["--set", o]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(open("data/canonical/run.json").read())


def shop():
    tables = generate("tiny", seed=42)
    return tables.events, tables.items, tables.users


def as_files(folder, events, items, users) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    events.assign(timestamp=events.timestamp.astype("int64") // 10**9).to_csv(folder / "events.csv", index=False)
    items.to_csv(folder / "items.csv", index=False)
    users.to_csv(folder / "users.csv", index=False)
    return ["data.source=files", f"data.path={folder}"]


def as_instacart(folder, events, items) -> list[str]:
    """The shop's orders in Instacart's files: orders.csv (times as each user's order number,
    days since the prior order and hour) and the order lines of those orders."""
    folder.mkdir(parents=True, exist_ok=True)
    bought = events[events.event_type == "purchase"].sort_values(["timestamp", "item_id"])
    orders = bought.groupby("order_id", as_index=False).agg(user_id=("user_id", "first"), at=("timestamp", "min")).sort_values(["user_id", "at"])
    orders["order_number"] = orders.groupby("user_id").cumcount() + 1
    days = orders["at"].dt.normalize()
    orders["days_since_prior_order"] = (days - days.groupby(orders["user_id"]).shift()) / DAY
    orders = orders.assign(eval_set="prior", order_dow=orders["at"].dt.dayofweek, order_hour_of_day=orders["at"].dt.hour)
    columns = ["order_id", "user_id", "eval_set", "order_number", "order_dow", "order_hour_of_day", "days_since_prior_order"]
    orders[columns].to_csv(folder / "orders.csv", index=False)
    lines = bought.assign(product_id=bought.item_id, add_to_cart_order=bought.groupby("order_id").cumcount() + 1, reordered=0)
    lines[["order_id", "product_id", "add_to_cart_order", "reordered"]].to_csv(folder / "order_products__prior.csv", index=False)
    codes = {c: pd.factorize(items[c])[0] + 1 for c in ("category", "department")}
    pd.DataFrame({"product_id": items.item_id, "product_name": items.name, "aisle_id": codes["category"], "department_id": codes["department"]}).to_csv(
        folder / "products.csv", index=False
    )
    pd.DataFrame({"aisle_id": codes["category"], "aisle": items.category}).drop_duplicates().to_csv(folder / "aisles.csv", index=False)
    pd.DataFrame({"department_id": codes["department"], "department": items.department}).drop_duplicates().to_csv(folder / "departments.csv", index=False)
    return ["data.source=instacart", f"data.path={folder}"]


def as_movielens(folder, ratings: pd.DataFrame) -> list[str]:
    """RecBole files of these MovieLens ratings, with the films and users of the real set."""
    folder.mkdir(parents=True, exist_ok=True)
    ratings.to_csv(folder / "ml-100k.inter", sep="\t", index=False)
    for suffix in (".item", ".user"):
        shutil.copy(SHARED_ML100K / f"ml-100k{suffix}", folder / f"ml-100k{suffix}")
    return ["data.source=movielens", f"data.path={folder}"]


def weeks(source: str, workdir) -> tuple[list[str], list[str]]:
    """The overrides of this week's run and of next week's, which has a week more of events."""
    if source == "synthetic":  # the built-in shop is the same each week: the next run sees no new events
        return [], []
    if source == "movielens":
        if not (SHARED_ML100K / "ml-100k.inter").exists():
            pytest.skip("shared MovieLens 100K data is not present")
        ratings = pd.read_csv(SHARED_ML100K / "ml-100k.inter", sep="\t")
        ratings = ratings[ratings["user_id:token"] <= 150]
        last = ratings["timestamp:float"].max()
        week = 7 * 86400
        return as_movielens(workdir / "week1", ratings[ratings["timestamp:float"] <= last - week]), as_movielens(workdir / "week2", ratings)
    events, items, users = shop()
    cutoff = events.timestamp.max() - 7 * DAY
    earlier = events[events.timestamp <= cutoff]
    if source == "files":
        return as_files(workdir / "week1", earlier, items, users), as_files(workdir / "week2", events, items, users)
    return as_instacart(workdir / "week1", earlier, items), as_instacart(workdir / "week2", events, items)


@pytest.mark.parametrize("source", ["synthetic", "files", "instacart", "movielens"])
def test_the_next_week_runs_gated_and_drift_checked(prefect_server, workdir, source):
    this_week, next_week = weeks(source, workdir)
    first = run(*this_week)
    second = run(*next_week)
    assert second["run_id"] != first["run_id"]
    if source != "synthetic":
        assert sum(second["rows"].values()) > sum(first["rows"].values())
    db = workdir / "warehouse" / "recmill.duckdb"
    assert warehouse.query(db, "SELECT run_id FROM runs ORDER BY started_at")["run_id"].tolist() == [first["run_id"], second["run_id"]]
    decisions = warehouse.query(db, "SELECT run_id, decision FROM model_decisions ORDER BY decided_at")
    assert decisions["run_id"].tolist() == [first["run_id"], second["run_id"]]
    assert decisions["decision"].iloc[0] == "promote" and decisions["decision"].iloc[1] in ("promote", "keep")
    checks = warehouse.query(db, 'SELECT "check", "column" FROM drift_checks WHERE run_id = ?', [second["run_id"]])
    assert "events" in set(checks["check"]) and "prediction" in set(checks["check"]) and len(checks) > 5
    drift = json.loads((workdir / "reports" / "drift" / "summary.json").read_text())
    assert drift["reference_run"] == first["run_id"] and drift["run_id"] == second["run_id"]
