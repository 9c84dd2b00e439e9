"""`dvc repro` runs the stages on a fresh copy, and a second `dvc repro` has nothing to do."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from recmill import warehouse

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def dvc(cwd: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_repro_twice(tmp_path):
    for name in ("recmill", "pipelines", "flows"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "dvc.yaml", tmp_path)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["preset"] = "tiny"
    params["validation"]["min_events"] = 20
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    dvc(tmp_path, "init", "--no-scm")

    first = dvc(tmp_path, "repro")
    assert "Running stage 'publish'" in first
    published = json.loads((tmp_path / "reports" / "publish.json").read_text())
    assert published["row_counts"]["recommendations"] > 0
    db = tmp_path / "warehouse" / "recmill.duckdb"
    assert warehouse.query(db, "SELECT count(*) AS n FROM runs")["n"].item() == 1

    second = dvc(tmp_path, "repro")
    assert "Running stage" not in second
    assert "up to date" in second

    metrics = dvc(tmp_path, "metrics", "show", "--json")
    shown = json.loads(metrics)
    values = next(iter(shown.values()))["data"]
    assert {"reports/metrics/popularity.json", "reports/metrics/als.json"} <= set(values)
