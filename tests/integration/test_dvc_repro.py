"""`dvc repro` in a fresh git clone: twice (the second does nothing), again when new source
files land, with metrics and plots compared between the two, and an experiment that
publishes nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from recmill import warehouse
from recmill.data.sources.synthetic import generate

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def run(cwd: Path, *command: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def dvc(cwd: Path, *args: str) -> str:
    return run(cwd, sys.executable, "-m", "dvc", *args)


def fresh_clone(into: Path) -> Path:
    """The project's tracked files as they are in this working tree, committed to a new git
    repository: what a clone of it holds, and nothing the pipeline left behind."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, into / name)
    run(into, "git", "init", "-q")
    commit(into, "the project")
    return into


def commit(repo: Path, message: str) -> None:
    run(repo, "git", "add", "-A")
    run(repo, "git", "-c", "user.name=recmill", "-c", "user.email=recmill@localhost", "commit", "-q", "-m", message)


def write_source(folder: Path, events, items, users) -> None:
    events.assign(timestamp=events.timestamp.astype("int64") // 10**9).to_csv(folder / "events.csv", index=False)
    items.to_csv(folder / "items.csv", index=False)
    users.to_csv(folder / "users.csv", index=False)


def test_repro_in_a_fresh_clone_week_after_week(tmp_path):
    repo = fresh_clone(tmp_path / "clone")
    shop = generate("tiny", seed=42)
    this_week = shop.events[shop.events.timestamp <= shop.events.timestamp.max() - pd.Timedelta(days=7)]
    write_source(repo / "data" / "source", this_week, shop.items, shop.users)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"]["source"] = "files"
    params["validation"]["min_events"] = 20
    params["train"]["models"] = ["popularity", "als"]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    commit(repo, "our shop's files and settings")

    first = dvc(repo, "repro")
    assert "Running stage 'publish'" in first
    db = repo / "warehouse" / "recmill.duckdb"
    assert warehouse.query(db, "SELECT count(*) AS n FROM runs")["n"].item() == 1
    assert "up to date" in dvc(repo, "repro") and "Running stage" not in dvc(repo, "repro")
    commit(repo, "week 1: dvc.lock")

    # next week's files: the pipeline runs again, from ingest
    write_source(repo / "data" / "source", shop.events, shop.items, shop.users)
    assert "ingest" in dvc(repo, "status")
    second = dvc(repo, "repro")
    assert "Running stage 'ingest'" in second and "Running stage 'publish'" in second
    assert warehouse.query(db, "SELECT count(*) AS n FROM runs")["n"].item() == 2

    # figures against last week's, from dvc.lock and the DVC cache
    diff = json.loads(dvc(repo, "metrics", "diff", "--json"))
    ndcg = diff["reports/metrics/als.json"]["test.ndcg@10"]
    assert ndcg["old"] != ndcg["new"] and ndcg["diff"] == pytest.approx(ndcg["new"] - ndcg["old"])
    plots = json.loads(dvc(repo, "plots", "show", "--json"))
    assert {"reports/metrics/als.curve.json", "reports/metrics/popularity.curve.json"} <= set(plots["data"]), plots

    # an experiment that must not touch what readers see
    commit(repo, "week 2: dvc.lock")
    before = db.read_bytes()
    dvc(repo, "exp", "run", "-S", "publish.enabled=false")
    assert db.read_bytes() == before
    report = json.loads((repo / "reports" / "publish.json").read_text())
    assert report["published"] is False and report["row_counts"]["recommendations"] > 0
