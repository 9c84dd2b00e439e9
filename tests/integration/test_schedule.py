"""The weekly deployment against a real `prefect server start`: `recmill schedule` serves it,
a run started from the command line completes and publishes, and `prefect deploy` takes prefect.yaml."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from recmill import warehouse
from tests.integration.conftest import TINY

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
DEPLOYMENT = "weekly_retrain/weekly"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"{what} not there after {timeout:.0f} s")


def registered(client, name: str = DEPLOYMENT):
    """The deployment (the weekly one by default) once the server knows it, else None."""
    try:
        return client.read_deployment_by_name(name)
    except Exception:
        return None


@pytest.fixture
def prefect_api(tmp_path):
    """A real Prefect server on loopback, with its own home and database, stopped afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(healthy, 180, "the Prefect server")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=60)


def test_the_served_deployments_run_weekly_hourly_and_on_demand(prefect_api, workdir):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    overrides = [*TINY, "train.models=[popularity]"]
    command = [sys.executable, "-m", "flows.cli", "schedule"] + [a for o in overrides for a in ("--set", o)]
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    served = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=open(workdir / "serve.log", "w"))
    try:
        with temporary_settings({PREFECT_API_URL: prefect_api}), get_client(sync_client=True) as client:
            found = wait_for(lambda: registered(client), 120, f"deployment {DEPLOYMENT}")
            assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in found.schedules] == [("0 3 * * 1", "UTC", True)]
            assert found.global_concurrency_limit.limit == 1
            assert found.parameters["overrides"] == overrides
            assert found.parameters["config"] == "params.yaml"  # none there: every setting's default, then the overrides
            hourly = wait_for(lambda: registered(client, "refresh/refresh"), 60, "the refresh deployment")  # served beside it
            assert [(s.schedule.cron, s.schedule.timezone) for s in hourly.schedules] == [("0 * * * *", "UTC")]
            assert hourly.parameters == found.parameters

            # a run started from the command line with its own parameters: publish 5 per user instead of 20
            started = subprocess.run(
                [sys.executable, "-m", "prefect", "deployment", "run", DEPLOYMENT, "-p", f"overrides={json.dumps([*overrides, 'publish.k=5'])}", "--watch"],
                env=env, capture_output=True, text=True, timeout=900,
            )
            assert started.returncode == 0, started.stdout + started.stderr + (workdir / "serve.log").read_text()[-3000:]
            (run,) = [r for r in client.read_flow_runs(limit=50) if r.deployment_id == found.id and r.state.is_completed()]
            assert run.name == json.loads((workdir / "data" / "canonical" / "run.json").read_text())["run_id"]
            db = workdir / "warehouse" / "recmill.duckdb"
            ranks = warehouse.query(db, "SELECT max(rank) AS k, count(DISTINCT run_id) AS runs FROM recommendations")
            assert ranks["k"].item() == 5 and ranks["runs"].item() == 1
            # the server's scheduler puts the next runs on Mondays at 03:00 UTC
            def scheduled():
                return [r for r in client.read_flow_runs(limit=50) if r.deployment_id == found.id and r.state.is_scheduled()]

            upcoming = wait_for(scheduled, 120, "a scheduled run")
            assert all(r.expected_start_time.weekday() == 0 and (r.expected_start_time.hour, r.expected_start_time.minute) == (3, 0)
                       and r.expected_start_time.utcoffset().total_seconds() == 0 for r in upcoming)
    finally:
        served.terminate()
        served.wait(timeout=60)

    # prefect.yaml declares the same deployment for a worker of a process work pool
    prefect = [sys.executable, "-m", "prefect"]
    subprocess.run([*prefect, "work-pool", "create", "recmill", "--type", "process"], cwd=REPO, env=env, check=True, capture_output=True)
    deployed = subprocess.run([*prefect, "--no-prompt", "deploy", "--all"], cwd=REPO, env={**env, "PWD": str(REPO)}, capture_output=True, text=True)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    with temporary_settings({PREFECT_API_URL: prefect_api}), get_client(sync_client=True) as client:
        pooled = client.read_deployment_by_name(DEPLOYMENT)
    assert pooled.work_pool_name == "recmill" and pooled.global_concurrency_limit.limit == 1
    assert [(s.schedule.cron, s.schedule.timezone) for s in pooled.schedules] == [("0 3 * * 1", "UTC")]
    assert pooled.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}]
