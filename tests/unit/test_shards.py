"""Lists made by worker processes, a shard of users each: the rows the model makes itself."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recmill.models.als import ALSRecommender
from recmill.shards import recommend_in_shards, shard_of
from tests.models.contract import make_data


def test_a_users_shard_is_a_stable_hash_of_the_ids_text():
    assert shard_of(["u1", "u2", "u3", "u4", "user-5"], 4).tolist() == [1, 1, 1, 2, 3]
    assert shard_of([1, 2], 3).tolist() == shard_of(["1", "2"], 3).tolist() == [1, 2]
    many = shard_of([f"u{i}" for i in range(1000)], 8)
    assert set(many) == set(range(8)) and np.bincount(many).min() > 80  # every shard has its share


def test_sharded_lists_are_the_models_own_rows_in_the_same_order(tmp_path):
    model = ALSRecommender(seed=3).fit(make_data(n_users=60, n_items=40))
    saved = model.save(tmp_path / "als")
    users = [*model.user_ids_[::-1], "newcomer"]  # any order, an unknown user too
    own = model.recommend(users, k=7, exclude_seen=True, reasons=True)
    sharded = recommend_in_shards(saved, users, 7, True, workers=2)
    pd.testing.assert_frame_equal(sharded, own, check_dtype=False)
    assert sharded["user_id"].iloc[0] == users[0] and sharded["reason"].str.len().min() > 0


def test_lists_now_from_a_saved_model_in_shards_leave_out_what_users_have_now(tmp_path):
    from recmill.champion import lists_now

    model = ALSRecommender(seed=3).fit(make_data(n_users=60, n_items=40))
    saved = model.save(tmp_path / "als")
    users = list(model.user_ids_)
    had_rows = [(model.user_ids_[r], model.item_ids_[c]) for r in range(len(users)) for c in model.history(r)]
    own = model.recommend([users[0]], k=3, exclude_seen=True)["item_id"].tolist()
    had = pd.DataFrame(had_rows + [(users[0], item) for item in own[:2]], columns=["user_id", "item_id"])  # bought since the fit
    sharded = lists_now(saved, users, 5, had, workers=2)
    pd.testing.assert_frame_equal(sharded, lists_now(model, users, 5, had), check_dtype=False)
    first = sharded[sharded["user_id"] == users[0]]
    assert first["rank"].tolist() == [1, 2, 3, 4, 5] and not set(own[:2]) & set(first["item_id"]) and first["item_id"].iloc[0] == own[2]
