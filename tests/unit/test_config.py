from pathlib import Path

import pytest

from recmill.config import Settings
from recmill.errors import ConfigError
from recmill.settings import load_settings

REPO = Path(__file__).resolve().parents[2]


def test_shipped_params_are_the_defaults():
    # one home per default: params.yaml spells out exactly the pydantic defaults
    assert load_settings(REPO / "params.yaml") == Settings()


def test_overrides_read_values_as_yaml():
    s = load_settings(None, ["models.als.factors=8", "train.models=[als]", "publish.exclude_seen=false", "data.path=/x"])
    assert s.models.als.factors == 8
    assert s.train.models == ["als"]
    assert s.publish.exclude_seen is False
    assert s.data.path == Path("/x")


@pytest.mark.parametrize(
    "override, message",
    [
        ("models.als.factorz=3", "unknown key 'models.als.factorz'"),
        ("nope=1", "unknown key 'nope'"),
        ("models.als.factors=-1", "bad value for 'models.als.factors'"),
        ("data.source=foo", "bad value for 'data.source'"),
        ("train.models=[als, xx]", r"unknown model\(s\) \['xx'\]"),
        ("evaluate.metrics=[ndcg, auc]", r"unknown metric\(s\) \['auc'\]"),
        ("seed", "--set expects key=value"),
        ("seed.x=1", "bad value for 'seed'"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(None, [override])


def test_a_file_source_needs_a_path():
    assert load_settings(None, ["data.source=movielens"]).data.path == Path("data/source")
    with pytest.raises(ConfigError, match="data.path is required when data.source is 'movielens'"):
        load_settings(None, ["data.source=movielens", "data.path=null"])


def test_typo_in_params_file_is_an_error(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("models:\n  als:\n    iteratons: 3\n")
    with pytest.raises(ConfigError, match=r"params.yaml: unknown key 'models.als.iteratons'"):
        load_settings(path)


def test_missing_explicit_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    "refit, events, refreshes",
    [("full", 10**9, False), ("refresh", 1, True), ("auto", 1_000, False), ("auto", 1_001, True)],
)
def test_later_fits_are_refreshes_above_the_threshold_or_when_asked(refit, events, refreshes):
    train = load_settings(None, [f"train.refit={refit}", "train.refresh_above_events=1000"]).train
    assert train.refreshes(events) is refreshes


def test_the_published_lists_are_made_by_a_process_per_core_for_many_users(monkeypatch):
    import recmill.config

    monkeypatch.setattr(recmill.config, "cores", lambda: 2)
    publish = Settings().publish
    assert [publish.worker_count(users) for users in (49_999, 50_000)] == [1, 2]
    assert load_settings(None, ["publish.workers=3"]).publish.worker_count(10) == 3
