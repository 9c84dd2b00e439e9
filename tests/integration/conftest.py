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
