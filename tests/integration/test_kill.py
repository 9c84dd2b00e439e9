"""kill -9 of a whole run (the machine going down) while it trains, while it scores and
while it publishes: readers keep the last complete tables, and the run, started again,
publishes the same tables as a run that was never stopped."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from recmill import warehouse
from recmill.data.sources.synthetic import generate
from tests.integration.conftest import TINY, published_tables

REPO = Path(__file__).resolve().parents[2]
MODELS = ["train.models=[popularity, ncf]", "models.ncf.epochs=4", "models.ncf.patience=4"]


def recmill_run(folder: Path, source: Path) -> subprocess.Popen:
    """`recmill run` in its own process group, on the files in source, writing under folder."""
    overrides = [*TINY, *MODELS, "data.source=files", f"data.path={source}"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.pop("PREFECT_API_URL", None)
    env["PREFECT_HOME"] = str(folder / "prefect")  # its own results, kept across the restarts
    log = open(folder / "run.log", "a")
    return subprocess.Popen([sys.executable, "-m", "flows.cli", "run", *(a for o in overrides for a in ("--set", o))],
                            cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def kill_when_running(run: subprocess.Popen, folder: Path, stage: str) -> None:
    """SIGKILL to the run's whole process group (workers and server too) once `stage` runs."""
    report, deadline = folder / "reports" / "stages.json", time.monotonic() + 600
    while True:
        assert run.poll() is None, (folder / "run.log").read_text()[-3000:]
        assert time.monotonic() < deadline, f"{stage} never ran"
        try:
            stages = {s["stage"]: s["status"] for s in json.loads(report.read_text())}
        except (OSError, ValueError):
            stages = {}
        if stages.get(stage) == "running":
            break
        time.sleep(0.05)
    time.sleep(0.3)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()


def week(source: Path, weeks: int) -> None:
    """The tiny shop's files as of its last week (weeks=2) or of the week before (weeks=1)."""
    tables = generate("tiny", seed=42)
    events = tables.events
    if weeks == 1:
        events = events[events.timestamp <= events.timestamp.max() - pd.Timedelta(days=7)]
    source.mkdir(exist_ok=True)
    events.assign(timestamp=events.timestamp.astype("int64") // 10**9).to_csv(source / "events.csv", index=False)
    tables.items.to_csv(source / "items.csv", index=False)
    tables.users.to_csv(source / "users.csv", index=False)


@pytest.mark.slow
def test_a_run_killed_at_three_points_keeps_the_tables_and_resumes_to_the_same_result(workdir):
    results = {}
    for name, kills in (("stopped", ["train ncf", "evaluate ncf", "publish"]), ("whole", [])):
        folder, source = workdir / name, workdir / name / "source"
        folder.mkdir()
        week(source, 1)
        assert recmill_run(folder, source).wait() == 0, (folder / "run.log").read_text()[-3000:]  # last week: published
        db = folder / "warehouse" / "recmill.duckdb"
        published = hashlib.sha256(db.read_bytes()).hexdigest()
        week(source, 2)
        for stage in kills:
            kill_when_running(recmill_run(folder, source), folder, stage)
            assert hashlib.sha256(db.read_bytes()).hexdigest() == published  # readers keep last week's tables
            assert warehouse.row_counts(db)["runs"] == 1
        assert recmill_run(folder, source).wait() == 0, (folder / "run.log").read_text()[-3000:]
        assert warehouse.row_counts(db)["runs"] == 2
        assert not list(db.parent.glob("*.building*"))  # nothing a killed publish left behind
        results[name] = published_tables(db)
    for table, frame in results["whole"].items():
        pd.testing.assert_frame_equal(results["stopped"][table], frame, obj=table)
