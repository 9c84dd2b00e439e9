"""A model that raises while it trains: the others finish, the run publishes with the
champion it had, says so in `runs`, and tells the notification hook."""

from __future__ import annotations

from typer.testing import CliRunner

from flows.cli import app
from recmill import warehouse
from recmill.evaluation.gate import FAILED_MODELS
from recmill.models.random import RandomRecommender
from tests.integration.conftest import TINY

MODELS = ["train.models=[popularity, random]", "train.workers=1", "evaluate.workers=1"]  # one process: the failure injected here reaches the fit


def run(*overrides: str):
    return CliRunner().invoke(app, ["run", *(a for o in [*TINY, *MODELS, *overrides] for a in ("--set", o))])


def test_a_model_failing_to_train_keeps_the_champion_and_is_reported(prefect_server, workdir, receiver, monkeypatch):
    url, received = receiver
    first = run()
    assert first.exit_code == 0, first.output
    db = workdir / "warehouse" / "recmill.duckdb"
    champion = warehouse.serving_version(db)

    def broken(self, data):
        raise RuntimeError("the disk of its features is gone")

    monkeypatch.setattr(RandomRecommender, "_fit", broken)
    second = run(f"flow.notify.webhook={url}", "interactions.event_weights.purchase=4.0")  # new settings: a new run
    assert second.exit_code == 0, second.output
    assert f"{FAILED_MODELS}: random (RuntimeError: the disk of its features is gone)" in second.output.replace("\n", " ")
    assert warehouse.serving_version(db) == champion
    runs = warehouse.query(db, "SELECT status FROM runs ORDER BY started_at")["status"].tolist()
    assert runs == ["success", "success, random failed to train"]
    decisions = warehouse.query(db, "SELECT decision FROM model_decisions ORDER BY decided_at")["decision"].tolist()
    assert decisions[-1] == "keep"
    metrics = warehouse.query(db, "SELECT DISTINCT model FROM model_metrics WHERE run_id = (SELECT max(run_id) FROM runs)")
    assert metrics["model"].tolist() == ["popularity"]  # the other model's figures are published
    (notice,) = [n for n in received if n["event"] == "models_failed"]
    assert notice["message"] == "failed to train: random (RuntimeError: the disk of its features is gone)"
