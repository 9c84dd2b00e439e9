"""What scoring a fit compares every model with: the held-out items each user came to have,
and the popularity and activity before the slice, on a hand-made split."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from recmill.config import Settings
from recmill.io import Layout, write_frame
from recmill.scoring import build_holdout

EVENTS = ["user_id", "item_id", "timestamp", "event_type", "value", "order_id"]
TRAIN = [("u1", "a", "purchase"), ("u1", "b", "purchase"), ("u1", "c", "view"), ("u2", "a", "purchase"), ("u3", "a", "view"),
         ("u1", "a", "purchase")]
VALID = [("u1", "b", "purchase"), ("u1", "c", "purchase"), ("u2", "a", "purchase"), ("u3", "a", "cart"), ("u3", "a", "purchase"),
         ("u4", "d", "rating")]


def events(rows) -> pd.DataFrame:
    return pd.DataFrame(
        [(u, i, pd.Timestamp("2025-01-01") + pd.Timedelta(days=n), t, 4.0 if t == "rating" else 1.0, f"o{n}") for n, (u, i, t) in enumerate(rows)],
        columns=EVENTS,
    ).astype({c: "string" for c in ("user_id", "item_id", "event_type", "order_id")})


@pytest.fixture
def settings(tmp_path) -> Settings:
    settings = Settings.model_validate({"paths": {"data": str(tmp_path / "data"), "reports": str(tmp_path / "reports")}})
    layout = Layout(settings)
    write_frame(layout.splits / "train.parquet", events(TRAIN))
    write_frame(layout.splits / "valid.parquet", events(VALID))
    write_frame(layout.canonical / "items.parquet", pd.DataFrame({"item_id": list("abcd"), "category": ["x", "x", "y", "y"]}))
    write_frame(layout.canonical / "users.parquet", pd.DataFrame({"user_id": ["u1", "u2", "u3", "u4"], "gender": ["f", "m", "f", "m"]}))
    return settings


def test_the_truth_is_what_users_came_to_have_that_they_did_not_have_before(settings):
    holdout = build_holdout(settings, "valid")
    # u1 had a and b (c was only viewed), u2 had a, u3 only viewed a: rating u4's d counts too
    assert holdout.truth == {"u1": {"c"}, "u3": {"a"}, "u4": {"d"}}
    assert holdout.popularity == Counter({"a": 2, "b": 1})  # users who had each item before
    assert holdout.n_users == 2
    assert holdout.activity == {"u1": 4, "u2": 1, "u3": 1}  # every training event
    assert holdout.ratings[["user_id", "item_id", "value"]].values.tolist() == [["u4", "d", 4.0]]
    assert holdout.groups == {"gender": {"u1": "f", "u3": "f", "u4": "m"}}


def test_with_seen_items_kept_the_truth_is_every_item_held_out(settings):
    settings.publish.exclude_seen = False
    assert build_holdout(settings, "valid").truth == {"u1": {"b", "c"}, "u2": {"a"}, "u3": {"a"}, "u4": {"d"}}


def test_a_sample_of_users_is_the_same_every_time(settings):
    settings.evaluate.max_users = 2
    first = build_holdout(settings, "valid").truth
    assert len(first) == 2 and set(first) <= {"u1", "u3", "u4"}
    assert build_holdout(settings, "valid").truth == first
