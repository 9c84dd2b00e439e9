"""Every malformed input of tests/bad_inputs stops the run before training with one
paragraph naming the file, the column and the rows (or the check); hostile-looking but
valid IDs are taken verbatim."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from pipelines.__main__ import main as stage
from recmill import warehouse
from tests.bad_inputs import CASES, Case
from tests.integration.test_warehouse import run_frames

REJECTED = [c for c in CASES if not c.accepted]
ACCEPTED = [c for c in CASES if c.accepted]


def write(case: Case, folder) -> list[str]:
    folder.mkdir()
    for name, content in case.files.items():
        (folder / name).write_bytes(content)
    return [f"data.source={case.source}", f"data.path={folder}", *case.settings]


def stages(overrides: list[str], *names: str) -> int:
    args = [a for o in overrides for a in ("--set", o)]
    return next((code for name in names if (code := stage([name, *args]))), 0)


def test_the_corpus_holds_at_least_25_malformed_inputs_over_every_source():
    assert len(REJECTED) >= 25 and len({c.name for c in CASES}) == len(CASES)
    assert {c.source for c in REJECTED} == {"files", "instacart", "movielens"}
    assert any(name.endswith(".parquet") for c in REJECTED for name in c.files)


@pytest.mark.parametrize("case", REJECTED, ids=[c.name for c in REJECTED])
def test_a_malformed_input_stops_before_training_and_says_where(case, workdir, capsys):
    db = workdir / "warehouse" / "recmill.duckdb"
    db.parent.mkdir()
    warehouse.publish(db, run_frames("last-good"))
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    overrides = write(case, workdir / "source")

    assert stages(overrides, "ingest", "validate") == 1
    said = capsys.readouterr().err
    message = said[said.index("error: "):]
    for part in case.expect:
        assert part in message, f"{case.name}: {part!r} not in {message!r}"
    assert "Traceback" not in said
    assert not (workdir / "data" / "split").exists()  # nothing went on to the split, let alone training
    assert message.rstrip().endswith("Full result: reports/validation/validation_result.json")  # the whole result, written
    assert json.loads((workdir / "reports" / "validation" / "validation_result.json").read_text())["success"] is False
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


@pytest.mark.parametrize("case", ACCEPTED, ids=[c.name for c in ACCEPTED])
def test_valid_ids_that_look_hostile_load_verbatim(case, workdir):
    overrides = write(case, workdir / "source")
    assert stages(overrides, "ingest", "validate") == 0
    events = pd.read_parquet(workdir / "data" / "canonical" / "events.parquet")
    source = next(iter(name for name in case.files if name.startswith("events")))
    given = pd.read_csv(workdir / "source" / source, dtype=str) if source.endswith(".csv") else pd.read_parquet(workdir / "source" / source)
    assert sorted(events.user_id.unique()) == sorted(given.user_id.astype(str).unique())
    assert sorted(events.item_id.unique()) == sorted(given.item_id.astype(str).unique())


@pytest.mark.slow
def test_hostile_ids_reach_the_warehouse_verbatim(prefect_server, workdir):
    case = next(c for c in ACCEPTED if "sql" in c.name)
    overrides = write(case, workdir / "source") + ["train.models=[popularity]"]
    result = CliRunner().invoke(app, ["run", *(a for o in overrides for a in ("--set", o))])
    assert result.exit_code == 0, result.output
    published = warehouse.query(workdir / "warehouse" / "recmill.duckdb", "SELECT DISTINCT user_id FROM recommendations")
    given = pd.read_csv(workdir / "source" / "events.csv", dtype=str)
    assert sorted(published.user_id) == sorted(given.user_id.unique())
    assert all("DROP TABLE runs" in user for user in published.user_id)
    assert warehouse.row_counts(workdir / "warehouse" / "recmill.duckdb")["runs"] == 1
