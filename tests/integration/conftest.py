import pytest


@pytest.fixture(scope="session")
def prefect_server():
    """One temporary Prefect server for the whole test session, started and stopped here."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run in an empty directory: every relative path of the settings lands under it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


TINY = ["data.preset=tiny", "validation.min_events=20"]


# what differs between two runs of the same inputs by design: when they ran, their ids, their MLflow runs
VARYING_COLUMNS = {"run_id", "generated_at", "model_version", "started_at", "finished_at", "decided_at", "champion_version",
                   "challenger_version", "params_json"}


def published_tables(db):
    """Every warehouse table's rows, sorted, without the columns that vary from run to run."""
    from recmill import warehouse
    from recmill.schema import WAREHOUSE_TABLES
    from recmill.sql import identifier

    out = {}
    for table, columns in WAREHOUSE_TABLES.items():
        kept = ", ".join(identifier(c) for c, _ in columns if c not in VARYING_COLUMNS)
        out[table] = warehouse.query(db, f"SELECT {kept} FROM {identifier(table)} ORDER BY ALL")
    return out
