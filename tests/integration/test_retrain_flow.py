"""The weekly_retrain flow end to end on small data, through the `recmill` command."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.retrain import training_order
from recmill import warehouse
from recmill.config import Settings, TrackingConfig
from recmill.dashboard import SECTIONS
from recmill.registry import Registry
from recmill.tracking import Tracker
from tests.integration.conftest import TINY, published_tables

pytestmark = pytest.mark.slow
runner = CliRunner()


def recmill_run(*overrides: str):
    args = ["run"]
    for o in overrides:
        args += ["--set", o]
    return runner.invoke(app, args, catch_exceptions=False)


def open_in_browser(page: Path, screenshot: Path) -> dict:
    """The page in headless Chromium: its console errors, its section headings, each model's
    test figure in the metrics table; a full-page screenshot saved at screenshot."""
    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if chromium is None:
        pytest.skip("no Chromium here (.ci/run installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            tab = browser.new_page(viewport={"width": 1280, "height": 900})
            errors = []
            tab.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            tab.on("pageerror", lambda error: errors.append(str(error)))
            tab.goto(page.as_uri())
            tab.wait_for_selector("#training .plotly-graph-div .main-svg")  # the last chart drawn
            header = [c.inner_text() for c in tab.query_selector_all("#metrics th")]
            rows = [[c.inner_text() for c in r.query_selector_all("td")] for r in tab.query_selector_all("#metrics tbody tr")]
            tab.screenshot(path=str(screenshot), full_page=True)
            return {"errors": errors, "headings": [h.inner_text() for h in tab.query_selector_all("h2")],
                    "test ndcg": {r[0]: r[header.index("ndcg")] for r in rows if r[1] == "test"}}
        finally:
            browser.close()


def readme_sql() -> list[str]:
    blocks = re.findall(r"```sql\n(.*?)```", (Path(__file__).resolve().parents[2] / "README.md").read_text(), flags=re.S)
    assert len(blocks) >= 8
    return blocks


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_run_publishes_every_table_then_refuses_bad_data(prefect_server, workdir, receiver):
    result = recmill_run(*TINY)
    assert result.exit_code == 0, result.output
    db = workdir / "warehouse" / "recmill.duckdb"
    assert str(db.resolve()) in result.output.replace("\n", "")
    assert "Published tables" in result.output
    stages = {s.pop("stage"): s for s in json.loads((workdir / "reports" / "stages.json").read_text())}
    models = Settings().train.models
    names = list(stages)
    assert names[: 4 + 2 * len(models) + 1] == ["ingest", "validate", "split", "drift", *(f"train {m}" for m in models),
                                                *(f"evaluate {m}" for m in models), "select"]
    refitted = [n.removeprefix("refit ") for n in names[4 + 2 * len(models) + 1 : -1]]
    assert names[-1] == "publish" and set(refitted) >= {"als", "content", "item2vec", "mf", "segments", "reorder"}
    assert refitted == [m for m in models if m in refitted]
    assert all(s["wall_s"] > 0 and s["cpu_s"] >= 0 and 0.05 < s["peak_rss_gib"] < 24 for s in stages.values())
    assert "train two_stage" in result.output and "peak GiB" in result.output
    items = warehouse.query(db, "SELECT * FROM items")
    catalogue = pd.read_parquet(workdir / "data" / "canonical" / "items.parquet")
    assert sorted(items.item_id) == sorted(catalogue.item_id) and items["name"].notna().all()

    recs = warehouse.query(db, "SELECT * FROM recommendations")
    events = pd.read_parquet(workdir / "data" / "canonical" / "events.parquet")
    users = set(events.user_id) | set(pd.read_parquet(workdir / "data" / "canonical" / "users.parquet").user_id)
    assert set(recs.user_id) == users
    per_user = recs.groupby("user_id")["rank"].agg(list)
    assert per_user.map(lambda r: r == list(range(1, len(r) + 1))).all()
    assert (per_user.map(len) == 20).mean() > 0.9
    assert recs["reason"].str.len().gt(5).all()
    bought = events[events.event_type == "purchase"]
    assert not set(zip(bought.user_id, bought.item_id)) & set(zip(recs.user_id, recs.item_id))
    assert recs["model"].nunique() == 1 and recs["run_id"].nunique() == 1

    chosen = recs["model"].iloc[0]
    metrics = warehouse.query(db, "SELECT * FROM model_metrics")
    overall = metrics[metrics.slice == "all"]
    valid_ndcg = overall[(overall.split == "valid") & (overall.metric == "ndcg") & (overall.k == 10)].set_index("model")["value"]
    assert chosen == valid_ndcg.idxmax()
    assert set(metrics.model) == set(Settings().train.models) and set(metrics.split) == {"valid", "test"}
    stage1 = overall[(overall.model == "two_stage") & (overall.metric == "stage1_recall")]
    assert set(stage1.split) == {"valid", "test"} and stage1["value"].between(0, 1).all()
    rated = metrics[metrics.metric.isin(["rmse", "mae"])]
    assert rated.empty  # the shop has no ratings: no rating metrics, for mf or anyone
    families = {s.split("=")[0] for s in set(metrics.slice) - {"all"}}
    assert families == {"segment", "activity", "age_group", "gender", "fairness", "popularity_decile", "vs_baseline"}
    gaps = metrics[(metrics.slice == "fairness=gender") & (metrics.split == "test")]
    assert set(gaps.metric) == {"exposure_gap", "equal_opportunity_gap"} and gaps["value"].between(0, 1).all()
    business = overall[(overall.model == "als") & (overall.split == "test") & (overall.k == 10)].set_index("metric")["value"]
    assert {"diversity", "novelty", "serendipity", "personalisation", "coverage"} <= set(business.index)
    assert 0 < business["diversity"] <= 1 and business["novelty"] > 0
    versus = metrics[(metrics.slice == "vs_baseline=popularity") & (metrics.model == "als") & (metrics.metric == "ndcg") & (metrics.k == 10)]
    test_ndcg = overall[(overall.split == "test") & (overall.metric == "ndcg") & (overall.k == 10)].set_index("model")["value"]
    assert versus["value"].item() == pytest.approx(100 * (test_ndcg["als"] / test_ndcg["popularity"] - 1))
    document = json.loads((workdir / "reports" / "evaluation" / f"{recs.run_id.iloc[0]}.json").read_text())
    assert set(document["metrics"]) == {"ranking", "prediction", "business", "fairness"}
    assert document["model"] == chosen and document["comparison_to_baseline"]["ndcg@10"] > 0
    assert set(warehouse.query(db, "SELECT DISTINCT model FROM similar_items")["model"]) == {"als", "content", "item2vec"}
    segments = warehouse.query(db, "SELECT * FROM user_segments")
    assert len(segments) == events.user_id.nunique() and segments["label"].str.len().gt(3).all()
    profiles = warehouse.query(db, "SELECT * FROM segment_profiles")
    assert profiles["size"].sum() == len(segments)
    # buy again: scored on the next order, published for every buyer, never the published lists
    reorder = overall[overall.model == "reorder"].set_index(["split", "metric"])["value"]
    assert {"auc", "log_loss", "basket_f1", "basket_f1_repeat_last_basket", "basket_f1_top_frequent"} <= set(reorder.index.get_level_values(1))
    assert "ndcg" not in set(reorder.index.get_level_values(1)) and chosen != "reorder"
    assert 0.5 < reorder[("test", "auc")] <= 1
    buy_again = warehouse.query(db, "SELECT * FROM buy_again")
    assert set(buy_again.user_id) == set(bought.user_id)
    assert buy_again["probability"].between(0, 1).all() and set(buy_again.run_id) == {recs.run_id.iloc[0]}
    assert set(zip(buy_again.user_id, buy_again.item_id)) <= set(zip(bought.user_id, bought.item_id))
    assert "Buy again" in result.output
    runs = warehouse.query(db, "SELECT * FROM runs")
    assert runs["status"].tolist() == ["success"] and runs["run_id"].tolist() == [recs.run_id.iloc[0]]
    # the run's dashboard, opened in a real browser: every section, no error, model_metrics' figures
    page = workdir / "reports" / "runs" / recs.run_id.iloc[0] / "index.html"
    assert f"Dashboard: {page.resolve()}" in result.output.replace("\n", "")
    shown = open_in_browser(page, workdir / "reports" / "dashboard.png")
    assert shown["errors"] == [] and shown["headings"] == list(SECTIONS.values())
    test_ndcg = overall[(overall.split == "test") & (overall.metric == "ndcg") & (overall.k == 10)].set_index("model")["value"]
    assert {m: float(v) for m, v in shown["test ndcg"].items()} == pytest.approx(test_ndcg.to_dict(), rel=1e-3)  # 4 significant digits
    assert (workdir / "reports" / "index.html").exists()
    # the README's SQL cookbook runs on it, its example user, item and category swapped for the tiny shop's
    user = sorted(set(recs.user_id) & set(buy_again.user_id))[0]
    item = warehouse.query(db, "SELECT min(item_id) AS i FROM similar_items")["i"].item()
    category = items.set_index("item_id").loc[recs.item_id.iloc[0], "category"]
    named = items.set_index("item_id").loc[recs.item_id]
    assert recs.item_name.tolist() == named["name"].tolist() and recs.item_category.tolist() == named["category"].tolist()
    for sql in readme_sql():
        rows = warehouse.query(db, sql.replace("'42'", f"'{user}'").replace("'76'", f"'{item}'").replace("'fresh fruits'", f"'{category}'"))
        assert len(rows) or "drift_checks" in sql, sql  # only the drift flags may be none

    # the flow run and the pipeline's MLflow parent run name each other; every fit is nested in it
    from uuid import UUID

    from prefect.client.orchestration import get_client

    run_id = recs.run_id.iloc[0]
    tracker = Tracker(TrackingConfig())
    parent = tracker.client.get_run(tracker.pipeline_parent(run_id))
    assert parent.info.run_name == run_id and parent.info.status == "FINISHED"
    assert parent.data.tags["recmill.decision"] == "promote"
    assert {r.data.tags.get("mlflow.parentRunId") for r in tracker.runs(run_id)} == {parent.info.run_id}
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(UUID(parent.data.tags["prefect.flow_run_id"]))
        # the run's figures, decision, drift and report paths are artifacts of its flow run in Prefect
        run_artifacts = [a for a in client.read_artifacts() if a.flow_run_id == flow_run.id]
    artifacts = {a.key: a for a in run_artifacts if a.key}
    assert flow_run.name == run_id
    assert set(artifacts) == {"model-metrics", "gate-decision", "data-drift", "reports"}
    # long loops showed their progress, each to the end (training stopped early included)
    bars = {a.description: a.data for a in run_artifacts if a.type == "progress"}
    assert {"mf: 30 epochs", "ncf: up to 50 epochs"} <= set(bars) and set(bars.values()) == {100.0}, bars
    table = json.loads(artifacts["model-metrics"].data)
    assert {row["model"] for row in table} == set(models) - {"reorder"}
    two_stage = next(row for row in table if row["model"] == "two_stage")
    assert two_stage["valid ndcg@10"] == pytest.approx(valid_ndcg["two_stage"], abs=1e-4)
    assert "## Gate: promote" in artifacts["gate-decision"].data and "no champion yet" in artifacts["gate-decision"].data
    assert "recmill.duckdb" in artifacts["reports"].data and "stages.json" in artifacts["reports"].data
    assert parent.info.run_id in artifacts["reports"].data

    # every fit is an MLflow run in the sqlite store, with params, metrics and the model
    tracked = {r.info.run_name: r for r in Tracker(TrackingConfig()).runs(recs.run_id.iloc[0])}
    refit = {"als", "content", "item2vec", "mf", "segments", "reorder", chosen}
    assert set(tracked) == set(Settings().train.models) | {f"{m}-full" for m in refit} | {"data-profile"}
    als = tracked["als"]
    assert als.data.params["config.factors"] == "128"
    assert als.data.metrics["valid_ndcg_at_10"] == pytest.approx(valid_ndcg["als"])
    # the first run's challenger is promoted: a registered version, its full fit tagged on it
    champion = Registry(TrackingConfig()).alias("champion")
    assert recs["model_version"].iloc[0] == champion.version and champion.model == chosen
    assert champion.full_run == tracked[f"{chosen}-full"].info.run_id
    artifacts = {a.path for a in Tracker(TrackingConfig()).client.list_artifacts(als.info.run_id, "model")}
    assert artifacts == {"model/valid", "model/test"}
    # the champion's registry entry is the fit that published: MLflow loads it and it gives the same lists
    import mlflow

    served = mlflow.pyfunc.load_model("models:/recmill@champion")
    user = recs.user_id.iloc[0]
    top = served.predict(pd.DataFrame({"user_id": [user]}), params={"k": 5})
    assert top["item_id"].tolist() == recs[recs.user_id == user].sort_values("rank")["item_id"].head(5).tolist()

    # why would the first user get their first recommendation? (the mf model explains)
    user, item = recs.user_id.iloc[0], recs.item_id.iloc[0]
    explained = runner.invoke(app, ["explain", user, item], catch_exceptions=False)
    assert explained.exit_code == 0, explained.output
    assert "because you" in explained.output and "score" in explained.output
    unknown = runner.invoke(app, ["explain", "nobody", item], catch_exceptions=False)
    assert unknown.exit_code == 1 and "nobody" in unknown.output

    # the same data written as plain files, one event type broken: refused, warehouse unchanged
    files = workdir / "files"
    files.mkdir()
    bad = events.assign(timestamp=events.timestamp.astype("int64") // 10**9)
    bad.loc[[3, 7], "event_type"] = "click"
    bad.to_csv(files / "events.csv", index=False)
    before = sha(db)
    url, received = receiver
    result = recmill_run(*TINY, "data.source=files", f"data.path={files}", f"flow.notify.webhook={url}")
    assert result.exit_code == 1
    assert [n["event"] for n in received] == ["failed"] and "event_type must be one of" in received[0]["message"]
    assert "events" in result.output and "event_type" in result.output and "click" in result.output
    assert "lines 5, 9" in result.output
    assert sha(db) == before
    assert (workdir / "reports" / "validation" / "validation_result.json").exists()


def test_bad_input_is_one_paragraph_without_a_traceback_unless_debugging(workdir):
    files = workdir / "files"
    files.mkdir()
    (files / "events.csv").write_text("user_id,item_id,event_type,timestamp\n1,a,click,1700000000\n2,b,purchase,1700000100\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")]))}
    env.pop("RECMILL_DEBUG", None)

    def recmill(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "flows.cli", *args, "run", "--set", "data.source=files", "--set", f"data.path={files}"]
        return subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)

    plain = recmill()
    assert plain.returncode == 1
    assert "Traceback" not in plain.stdout + plain.stderr
    assert "error: Validation failed" in plain.stderr
    assert (plain.stdout + plain.stderr).count("event_type must be one of view, cart, purchase, rating: 1 of 2 rows fail (line 2)") == 1
    debugging = recmill("--debug")
    assert debugging.returncode == 1
    assert "Traceback" in debugging.stderr and "ValidationFailed" in debugging.stderr


def test_bad_setting_is_named_before_anything_runs(workdir):
    result = recmill_run("models.als.factorz=3")
    assert result.exit_code == 1
    assert "unknown key 'models.als.factorz'" in result.output
    assert not (workdir / "data").exists()


def test_the_same_inputs_publish_the_same_tables_with_every_model_in_one_process_or_in_two(prefect_server, workdir):
    """Determinism: same data, settings and seed give identical published rows, ranks, scores
    and reasons, whether the models train one after the other (evaluated by one process
    beside the lighter fits, by two after them, and the published lists made by one) or side
    by side (two processes train, evaluate and make the lists)."""
    models = Settings().train.models
    tables = {}
    for workers in (1, 2):
        folder = workdir / f"workers{workers}"
        paths = [f"paths.data={folder}/data", f"paths.reports={folder}/reports", f"publish.warehouse={folder}/w.duckdb",
                 f"tracking.uri=sqlite:///{folder}/mlflow.db", f"tracking.artifacts={folder}/artifacts"]
        result = recmill_run(*TINY, f"train.workers={workers}", "evaluate.workers=2", f"publish.workers={workers}", "publish.parallel_min_users=0", *paths)
        assert result.exit_code == 0, result.output
        stages = json.loads((folder / "reports" / "stages.json").read_text())
        trained = training_order(Settings(), models) if workers == 1 else models
        assert [s["stage"] for s in stages if s["stage"].startswith(("train", "evaluate"))] == [
            *(f"train {m}" for m in trained), *(f"evaluate {m}" for m in models)
        ]
        assert all(s["status"] == "ok" and s["wall_s"] > 0 for s in stages)
        tables[workers] = published_tables(folder / "w.duckdb")
    for name, frame in tables[1].items():
        pd.testing.assert_frame_equal(tables[2][name], frame, obj=name)
    assert all(len(tables[1][t]) for t in ("recommendations", "similar_items", "user_segments", "buy_again", "model_metrics"))


def test_a_failed_run_started_again_reuses_the_stages_it_finished(prefect_server, workdir, monkeypatch):
    import pipelines.publish
    from recmill.errors import RecmillError

    models = ["train.models=[popularity, als]"]

    def unavailable(settings):
        raise RecmillError("the warehouse disk is full")

    real = pipelines.publish.run
    monkeypatch.setattr(pipelines.publish, "run", unavailable)
    failed = recmill_run(*TINY, *models)
    assert failed.exit_code == 1 and "the warehouse disk is full" in failed.output
    first_attempt = json.loads((workdir / "data" / "canonical" / "run.json").read_text())["run_id"]

    monkeypatch.setattr(pipelines.publish, "run", real)
    resumed = recmill_run(*TINY, *models)
    assert resumed.exit_code == 0, resumed.output
    stages = {s["stage"]: s["status"] for s in json.loads((workdir / "reports" / "stages.json").read_text())}
    assert stages.pop("ingest") == "ok" and stages.pop("publish") == "ok"
    assert set(stages.values()) == {"reused"} and {"train als", "evaluate als", "select", "refit als"} <= set(stages)
    assert "train als (reused)" in resumed.output and "Resumed:" in resumed.output
    db = workdir / "warehouse" / "recmill.duckdb"
    assert warehouse.query(db, "SELECT run_id FROM runs")["run_id"].tolist() == [first_attempt]
    fits = [r.info.run_name for r in Tracker(TrackingConfig()).runs(first_attempt)]
    assert fits.count("als") == 1  # trained once, by the first attempt

    # the run published: the next one is a run of its own, and reuses nothing
    again = recmill_run(*TINY, *models)
    assert again.exit_code == 0, again.output
    statuses = {s["status"] for s in json.loads((workdir / "reports" / "stages.json").read_text())}
    assert statuses == {"ok"}
    assert len(warehouse.query(db, "SELECT run_id FROM runs")) == 2
