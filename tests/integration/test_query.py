"""`recmill query` reads the warehouse and can change nothing: not its tables, not another
database, not a file."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from flows.cli import app
from recmill import warehouse
from tests.integration.test_warehouse import run_frames

runner = CliRunner()


@pytest.fixture
def published(tmp_path):
    path = tmp_path / "w.duckdb"
    warehouse.publish(path, run_frames("r1"))
    return path


def query(path, *args):
    return runner.invoke(app, ["query", *args, "--set", f"publish.warehouse={path}"])


def test_query_prints_the_rows_as_a_table_or_as_json(published):
    shown = query(published, "SELECT user_id, item_id, rank FROM recommendations WHERE user_id = 'u1' ORDER BY rank LIMIT 3")
    assert shown.exit_code == 0, shown.output
    assert "3 rows" in shown.output and "i1" in shown.output and "i3" in shown.output
    as_json = query(published, "SELECT item_id, rank FROM recommendations WHERE user_id = 'u1' ORDER BY rank LIMIT 2", "--json")
    assert json.loads(as_json.output) == [{"item_id": "i1", "rank": 1}, {"item_id": "i2", "rank": 2}]


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO runs SELECT * FROM runs",
        "DROP TABLE recommendations",
        "DELETE FROM recommendations",
        "CREATE TABLE extra AS SELECT 1",
        "ATTACH '{folder}/other.duckdb' AS other",
        "COPY recommendations TO '{folder}/stolen.csv'",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SET enable_external_access = true",
        "PRAGMA enable_checkpoint_on_shutdown",
        "INSTALL httpfs",
    ],
)
def test_query_can_change_nothing(published, sql):
    before = published.read_bytes()
    files = set(published.parent.iterdir())
    result = query(published, sql.format(folder=published.parent))
    assert result.exit_code == 1 and "the query failed (the warehouse is read-only here)" in result.output
    assert "Traceback" not in result.output
    assert published.read_bytes() == before and set(published.parent.iterdir()) == files
    assert warehouse.row_counts(published)["recommendations"] > 0


def test_query_without_a_warehouse_says_so(tmp_path):
    result = query(tmp_path / "none.duckdb", "SELECT 1")
    assert result.exit_code == 1 and "no warehouse at" in result.output
