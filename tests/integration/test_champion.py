"""The champion / challenger gate over several runs, against a real MLflow sqlite store."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from flows.cli import app
from recmill import warehouse
from recmill.config import TrackingConfig
from recmill.registry import Registry
from tests.integration.conftest import TINY

pytestmark = pytest.mark.slow
runner = CliRunner()


def recmill(*args: str):
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


# the tiny shop scores ~30 users per gender: recall gaps of 0.25 are noise there
GATE = ["gate.max_fairness_gap=0.5"]


def run(*overrides: str) -> dict:
    args = ["run"]
    for o in [*TINY, *GATE, *overrides]:
        args += ["--set", o]
    recmill(*args)
    return json.loads(open("reports/selection.json").read())


def published(db) -> tuple[str, str]:
    recs = warehouse.query(db, "SELECT DISTINCT model, model_version FROM recommendations")
    assert len(recs) == 1
    return recs["model"].item(), recs["model_version"].item()


CRIPPLED = "models.popularity.window_days=0.001"  # popularity counted over the last minute and a half only


def test_only_a_better_model_replaces_the_champion(prefect_server, workdir, monkeypatch):
    db = workdir / "warehouse" / "recmill.duckdb"
    first = run("train.models=[popularity]", CRIPPLED)
    assert first["decision"] == "promote" and first["reasons"] == [f"no champion yet: {first['challenger']} is the first"]
    assert published(db) == ("popularity", first["challenger_version"])

    # the same data and settings again: nothing is significantly better; an A/B test
    # publishes the challenger's lists beside the champion's
    again = run("train.models=[popularity]", CRIPPLED, "gate.ab_test=true", "gate.ab_share=0.3")
    assert again["decision"] == "keep" and again["p_value"] == 1.0
    assert "does not beat" in again["reasons"][0] and "(+0.0%)" in again["reasons"][0]
    assert published(db) == ("popularity", first["challenger_version"])
    challenger_lists = warehouse.query(db, "SELECT DISTINCT model_version FROM recommendations_challenger")
    assert challenger_lists["model_version"].tolist() == [again["challenger_version"]]
    variants = warehouse.query(db, "SELECT * FROM ab_assignments")
    users = warehouse.query(db, "SELECT DISTINCT user_id FROM recommendations")
    assert set(variants.user_id) == set(users.user_id) and set(variants.variant) == {"champion", "challenger"}
    assert 0.15 < (variants.variant == "challenger").mean() < 0.45
    from pipelines.publish import ab_variant

    assert ab_variant(variants.user_id, "recmill", 0.3) == variants.variant.tolist()  # stable: a hash, not a draw

    # a better model appears: promoted, and it publishes; no A/B test any more
    better = run("train.models=[popularity]")
    assert better["decision"] == "promote", better["reasons"]
    assert warehouse.query(db, "SELECT count(*) AS n FROM ab_assignments")["n"].item() == 0
    assert better["champion_version"] == first["challenger_version"] and better["p_value"] < 0.05
    assert published(db) == ("popularity", better["challenger_version"])

    # a crippled challenger is kept out; the champion goes on publishing
    weak = run("train.models=[popularity]", CRIPPLED, "gate.keep_versions=2")
    assert weak["decision"] == "keep" and weak["challenger_value"] < weak["champion_value"]
    assert published(db) == ("popularity", better["challenger_version"])

    decisions = warehouse.query(db, "SELECT * FROM model_decisions ORDER BY decided_at")
    assert decisions["decision"].tolist() == ["promote", "keep", "promote", "keep"]
    assert decisions["challenger_version"].tolist() == [r["challenger_version"] for r in (first, again, better, weak)]
    assert decisions["reasons"].str.len().gt(20).all()

    registry = Registry(TrackingConfig())
    versions = {v.version: v for v in registry.versions()}
    assert versions[better["challenger_version"]].aliases == ("champion",)
    assert versions[weak["challenger_version"]].aliases == ("challenger",)
    assert [versions[r["challenger_version"]].semver for r in (first, again, better, weak)] == ["1.0.0", "1.0.1", "1.1.0", "1.2.0"]
    # two kept per model: the older ones are archived, unless an alias still names them
    assert [versions[r["challenger_version"]].archived for r in (first, again, better, weak)] == [False, True, False, False]
    assert versions[first["challenger_version"]].aliases == ("previous-champion",)

    # by hand: activate the first champion, then roll back
    listed = recmill("models", "list").output
    assert "champion" in listed and "challenger" in listed
    recmill("models", "activate", first["challenger_version"])
    assert published(db) == ("popularity", first["challenger_version"])
    recmill("models", "rollback")
    assert published(db) == ("popularity", better["challenger_version"])
    decisions = warehouse.query(db, "SELECT decision FROM model_decisions ORDER BY decided_at")["decision"].tolist()
    assert decisions[-2:] == ["activate", "rollback"]
    unknown = runner.invoke(app, ["models", "activate", "999"])
    assert unknown.exit_code == 1 and "no model version 999" in unknown.output

    # lists that fail the output checks never reach the warehouse
    import pipelines.publish
    import recmill.champion as champion
    from recmill.errors import ValidationFailed
    from recmill.settings import load_settings

    real = champion.lists_now

    def broken(*args):
        recs = real(*args)
        recs.loc[3, "score"] = float("nan")
        return recs

    monkeypatch.setattr(champion, "lists_now", broken)
    info = json.loads(open("data/canonical/run.json").read())  # a run that has not published yet
    open("data/canonical/run.json", "w").write(json.dumps({**info, "run_id": "20990101T000000-unpublished"}))
    before = db.read_bytes()
    with pytest.raises(ValidationFailed, match="score is NaN or missing"):
        pipelines.publish.run(load_settings(None, TINY))
    assert db.read_bytes() == before

    # a version that never published has no fit on all the data: activating trains one
    monkeypatch.setattr(champion, "lists_now", real)
    assert registry.get(weak["challenger_version"]).full_run is None
    recmill("models", "activate", weak["challenger_version"])
    assert published(db) == ("popularity", weak["challenger_version"])
    assert registry.get(weak["challenger_version"]).full_run is not None


def test_a_publish_stopped_at_the_registry_is_finished_by_its_retry_and_healed_by_the_next_run(prefect_server, workdir, monkeypatch):
    from recmill.registry import CHAMPION

    db = workdir / "warehouse" / "recmill.duckdb"
    first = run("train.models=[popularity]", CRIPPLED)
    real = Registry.set_alias
    failures = {"left": 1}

    def flaky(self, alias, version):
        if alias == CHAMPION and failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("the MLflow store did not answer")
        return real(self, alias, version)

    # the better model's publish switches the warehouse, then fails at the registry: Prefect's retry finishes it
    monkeypatch.setattr(Registry, "set_alias", flaky)
    better = run("train.models=[popularity]")
    assert better["decision"] == "promote" and failures["left"] == 0
    run_id = json.loads(open("data/canonical/run.json").read())["run_id"]
    rows = {t: warehouse.query(db, f"SELECT count(*) AS n FROM {t} WHERE run_id = ?", [run_id])["n"].item()
            for t in ("runs", "model_decisions", "model_metrics")}
    first_metrics = warehouse.query(db, "SELECT count(*) AS n FROM model_metrics WHERE run_id <> ?", [run_id])["n"].item()
    assert rows == {"runs": 1, "model_decisions": 1, "model_metrics": first_metrics}  # written once, not once per attempt
    registry = Registry(TrackingConfig())
    assert registry.alias(CHAMPION).version == better["challenger_version"] == published(db)[1]
    assert registry.alias("previous-champion").version == first["challenger_version"]

    # a publish that stopped for good between the two: the next run's gate meets the champion the warehouse serves
    real(registry, CHAMPION, first["challenger_version"])
    after = run("train.models=[popularity]")
    assert after["champion_version"] == better["challenger_version"]
    assert registry.alias(CHAMPION).version == better["challenger_version"] == published(db)[1]
