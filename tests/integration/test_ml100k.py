"""Real data: MovieLens 100K on the shared protocol (skipped when the data is absent)."""

from __future__ import annotations

import pytest

from recmill.config import InteractionsConfig, Settings, SplitConfig
from recmill.data.interactions import InteractionData
from recmill.data.sources import load_source
from recmill.data.split import relevant_items, temporal_split
from recmill.evaluation.holdout import score_model
from recmill.models import build_model


@pytest.fixture(scope="module")
def protocol(request):
    from tests.conftest import SHARED_ML100K

    if not (SHARED_ML100K / "ml-100k.inter").exists():
        pytest.skip("shared MovieLens 100K data is not present")
    tables = load_source("movielens", SHARED_ML100K)
    parts = temporal_split(tables.events, SplitConfig(test_fraction=0.2, valid_fraction=None, min_user_events=2))
    data = InteractionData.build(parts["train"], tables.items, tables.users, InteractionsConfig())
    return data, relevant_items(parts["test"], ["rating"])


def ndcg10(name: str, protocol) -> float:
    data, truth = protocol
    model = build_model(name, Settings()).fit(data)
    return score_model(model, truth, ["ndcg"], [10])[0]["value"]


def test_split_holds_out_a_fifth(protocol):
    data, truth = protocol
    assert len(truth) == 943
    assert sum(len(v) for v in truth.values()) == 20_000


def test_popularity_matches_the_reference(protocol):
    assert ndcg10("popularity", protocol) == pytest.approx(0.116, abs=0.002)


def test_als_with_default_settings_clears_the_reference(protocol):
    assert ndcg10("als", protocol) >= 0.194


def test_buy_again_is_skipped_because_nobody_rates_a_film_twice(protocol):
    from recmill.errors import ModelSkipped

    data, _ = protocol
    with pytest.raises(ModelSkipped, match="no user has the same item in two orders"):
        build_model("reorder", Settings()).fit(data)
