"""A run stopped with SIGTERM (or Ctrl-C) stops whole: the temporary Prefect server it
started goes with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.integration.conftest import TINY

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_run_leaves_no_process_behind(workdir, stop):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.pop("PREFECT_API_URL", None)  # its own temporary server
    command = [sys.executable, "-m", "flows.cli", "run", *(a for o in TINY for a in ("--set", o))]
    log = workdir / "run.log"  # a file, not a pipe: a process left behind would hold a pipe open
    with open(log, "w") as out:
        run = subprocess.Popen(command, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while "Beginning flow run" not in log.read_text():  # the flow runs: its server is up
        assert run.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.5)
    started = psutil.Process(run.pid).children(recursive=True)
    assert any("uvicorn" in " ".join(p.cmdline()) for p in started), [p.cmdline() for p in started]
    time.sleep(1)
    run.send_signal(stop)
    try:
        # 130, or ended by SIGINT itself, as Python ends a process after a Ctrl-C that a library
        # caught on its way up (a shell shows both as 130)
        assert run.wait(timeout=120) in (130, -signal.SIGINT), log.read_text()
        output = log.read_text()
        assert "stopped:" in output and "Traceback" not in output
        assert "Task run 'publish" not in output  # it stopped, at the latest when its stage ended
        _, alive = psutil.wait_procs(started, timeout=60)
        assert not alive, [p.cmdline() for p in alive]
    finally:  # nothing left running after a failure either
        if run.poll() is None:
            run.kill()
        for process in started:
            if process.is_running():
                process.kill()


@pytest.mark.slow
def test_a_second_run_on_the_same_folders_stops_at_once_and_the_first_finishes(workdir):
    from recmill import warehouse

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.pop("PREFECT_API_URL", None)
    command = [sys.executable, "-m", "flows.cli", "run", *(a for o in [*TINY, "train.models=[popularity, ncf]"] for a in ("--set", o))]
    log = workdir / "first.log"
    with open(log, "w") as out:
        first = subprocess.Popen(command, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        while not (workdir / "reports" / "stages.json").exists():  # its flow runs, the folders held
            assert first.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        second = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
        assert second.returncode == 1, second.stdout + second.stderr
        said = " ".join(second.stderr.split())  # the console wraps long lines
        assert f"another recmill run is using {(workdir / 'data').resolve()} (pid {first.pid}, started" in said, said
        assert first.wait(timeout=600) == 0, log.read_text()
    finally:
        if first.poll() is None:
            first.kill()
    assert warehouse.row_counts(workdir / "warehouse" / "recmill.duckdb")["runs"] == 1
