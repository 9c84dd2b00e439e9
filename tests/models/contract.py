"""The shared contract every recommender passes: subclass RecommenderContract and set
``model_class`` (and ``config`` for a small, fast configuration)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recmill.config import InteractionsConfig
from recmill.data.interactions import InteractionData
from recmill.errors import IntegrityError, NotFittedError, RecmillError


def make_data(seed: int = 0, n_users: int = 40, n_items: int = 30) -> InteractionData:
    """Two taste groups over two halves of the catalogue, so a model has something to learn."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        half = u % 2
        pool = np.arange(n_items // 2) + half * (n_items // 2)
        for i in rng.choice(pool, size=6, replace=False):
            rows.append((f"u{u}", f"i{i}", "purchase"))
    rows.append(("u0", f"i{n_items - 1}", "view"))
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type"])
    events["timestamp"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(len(events)), unit="h")
    events["value"] = 1.0
    items = pd.DataFrame(
        {"item_id": [f"i{i}" for i in range(n_items)], "name": [f"Item {i}" for i in range(n_items)],
         "category": ["Dairy" if i < n_items // 2 else "Bakery" for i in range(n_items)]}
    )
    return InteractionData.build(events, items, pd.DataFrame({"user_id": []}), InteractionsConfig())


class RecommenderContract:
    model_class = None
    config = None  # None: the model's defaults

    def make(self, seed: int = 7):
        return self.model_class(self.config, seed=seed)

    @pytest.fixture(scope="class")
    def data(self):
        return make_data()

    @pytest.fixture(scope="class")
    def fitted(self, data):
        return self.make().fit(data)

    def test_fit_returns_self(self, data):
        model = self.make()
        assert model.fit(data) is model

    def test_constructor_only_stores_config(self):
        model = self.make()
        assert not model.is_fitted
        assert not [k for k in vars(model) if k.endswith("_")]

    def test_output_schema_and_order(self, fitted, data):
        users = list(data.user_ids[:10])
        recs = fitted.recommend(users, k=5)
        assert list(recs.columns) == ["user_id", "item_id", "rank", "score"]
        assert list(pd.unique(recs["user_id"])) == users
        for _, group in recs.groupby("user_id", sort=False):
            assert list(group["rank"]) == list(range(1, len(group) + 1))
            assert len(group) == 5
            assert group["score"].is_monotonic_decreasing
            assert group["item_id"].is_unique
            assert np.isfinite(group["score"]).all()

    def test_seen_items_excluded(self, fitted, data):
        users = list(data.user_ids)
        recs = fitted.recommend(users, k=10, exclude_seen=True)
        bought = data.events[data.events["event_type"] == "purchase"]
        had = set(zip(bought["user_id"].astype(str), bought["item_id"].astype(str)))
        assert not had & set(zip(recs["user_id"], recs["item_id"]))

    def test_viewed_items_can_be_recommended(self, fitted, data):
        # u0 only viewed the last item: not had, so not excluded
        recs = fitted.recommend(["u0"], k=len(data.item_ids), exclude_seen=True)
        assert f"i{len(data.item_ids) - 1}" in set(recs["item_id"])

    def test_seen_items_allowed_when_asked(self, fitted, data):
        recs = fitted.recommend(list(data.user_ids), k=len(data.item_ids), exclude_seen=False)
        assert (recs.groupby("user_id").size() == len(data.item_ids)).all()

    def test_user_without_history_gets_popular_items(self, fitted, data):
        recs = fitted.recommend(["someone-new"], k=3)
        bought = data.events[data.events["event_type"] == "purchase"]
        counts = bought.drop_duplicates(["user_id", "item_id"])["item_id"].value_counts()
        assert set(recs["item_id"]) <= set(counts.index[counts >= counts.iloc[2]])
        assert len(recs) == 3

    def test_reasons(self, fitted, data):
        recs = fitted.recommend(list(data.user_ids[:3]) + ["someone-new"], k=4, reasons=True)
        assert recs["reason"].map(lambda r: isinstance(r, str) and len(r) > 5).all()

    def test_save_load_identical(self, fitted, data, tmp_path):
        fitted.save(tmp_path / "m")
        loaded = self.model_class.load(tmp_path / "m")
        users = list(data.user_ids) + ["someone-new"]
        pd.testing.assert_frame_equal(fitted.recommend(users, k=7, reasons=True), loaded.recommend(users, k=7, reasons=True))
        if self.model_class.has_similar_items:
            pd.testing.assert_frame_equal(fitted.similar_items(k=5), loaded.similar_items(k=5))

    def test_load_refuses_another_models_files(self, fitted, tmp_path):
        fitted.save(tmp_path / "m")
        other = next(c for c in _all_models() if c is not self.model_class)
        with pytest.raises(RecmillError, match=f"holds model '{self.model_class.name}'"):
            other.load(tmp_path / "m")

    def test_load_refuses_files_changed_after_the_save(self, fitted, tmp_path):
        path = fitted.save(tmp_path / "m")
        saved = sorted(f for f in path.rglob("*") if f.is_file() and f.name != "hashes.json")
        assert {"config.json", "state.npz"} <= {f.name for f in saved}
        for file in saved:  # each file the save wrote is checked: a changed byte anywhere is refused
            original = file.read_bytes()
            file.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
            with pytest.raises(IntegrityError, match=f"changed or missing since the model was saved: {file.relative_to(path).as_posix()}"):
                self.model_class.load(path)
            file.write_bytes(original)
        self.model_class.load(path)
        (path / "state.npz").unlink()
        with pytest.raises(IntegrityError, match="state.npz"):
            self.model_class.load(path)

    def test_saved_files_hold_no_pickle(self, fitted, tmp_path):
        """A model file is data: no pickled object anywhere in it (numpy's files are checked
        by loading them with pickles refused, torch's by its weights-only loader)."""
        path = fitted.save(tmp_path / "m")
        for file in path.rglob("*"):
            if file.suffix == ".npz":
                with np.load(file, allow_pickle=False) as arrays:
                    [arrays[k] for k in arrays.files]  # raises on an object array
            elif file.suffix in (".pt", ".pth"):
                import torch

                torch.load(file, weights_only=True)
            elif file.is_file():
                assert file.suffix in (".json", ".txt"), f"unexpected file kind: {file}"
                file.read_text()  # text: JSON or a LightGBM model

    def test_unfitted_model_raises(self):
        with pytest.raises(NotFittedError, match="not fitted"):
            self.make().recommend(["u1"], k=3)

    def test_same_seed_same_output(self, data):
        users = list(data.user_ids)
        a = self.make(seed=3).fit(data).recommend(users, k=5)
        b = self.make(seed=3).fit(data).recommend(users, k=5)
        pd.testing.assert_frame_equal(a, b)

    # the refreshed users' lists equal a fit's when nothing new came (the user side is a
    # function of their events); false where refresh solves what the fit trained (ALS, mf)
    refresh_reproduces_fit = True

    def history_data(self, model, data, new_events: pd.DataFrame) -> InteractionData:
        """The whole history of new_events' users, over the model's items (what refresh_users takes)."""
        users = set(new_events["user_id"])
        history = pd.concat([data.events[data.events["user_id"].isin(users)], new_events], ignore_index=True)
        items = data.items.set_index("item_id").reindex(pd.Index(model.item_ids_, name="item_id")).reset_index()
        return InteractionData.build(history, items, data.users.iloc[:0], InteractionsConfig())

    def test_refresh_folds_new_events_into_their_users_only(self, data, tmp_path):
        model = self.make().fit(data)
        users = list(data.user_ids)
        if not model.folds_in:
            with pytest.raises(RecmillError, match="cannot fold in new events"):
                model.refresh_users(data)
            return
        before = model.recommend(users, k=5)
        user = users[1]
        bought = list(before.loc[before["user_id"] == user, "item_id"].iloc[:2])  # their top two, bought now
        newcomer_items = list(data.item_ids[:3])
        new = pd.DataFrame(
            [(user, item, "purchase") for item in bought] + [("newcomer", item, "purchase") for item in newcomer_items],
            columns=["user_id", "item_id", "event_type"],
        )
        new["timestamp"], new["value"] = data.events["timestamp"].max() + pd.Timedelta(hours=1), 1.0
        assert model.refresh_users(self.history_data(model, data, new)) is model
        after = model.recommend([*users, "newcomer"], k=5)
        assert not set(bought) & set(after.loc[after["user_id"] == user, "item_id"])
        others = [u for u in users if u != user]
        pd.testing.assert_frame_equal(
            after[after["user_id"].isin(others)].reset_index(drop=True), before[before["user_id"].isin(others)].reset_index(drop=True)
        )
        newcomer = after[after["user_id"] == "newcomer"]
        assert list(newcomer["rank"]) == [1, 2, 3, 4, 5] and not set(newcomer_items) & set(newcomer["item_id"])
        assert model.user_rows(["newcomer"])[0] == len(users)  # appended
        model.save(tmp_path / "m")
        pd.testing.assert_frame_equal(type(model).load(tmp_path / "m").recommend([user, "newcomer"], k=5), model.recommend([user, "newcomer"], k=5))

    def test_refresh_without_new_events_keeps_the_lists(self, fitted, data):
        if not (self.model_class.folds_in and self.refresh_reproduces_fit):
            pytest.skip("the model cannot fold in events, or its refresh solves what its fit trained")
        model = self.make().fit(data)
        users = list(data.user_ids)
        before = model.recommend(users, k=5)
        model.refresh_users(self.history_data(model, data, data.events[data.events["user_id"].isin(users[:5])]))
        after = model.recommend(users, k=5)
        key = ["user_id", "item_id", "rank"]  # a recency weight counted from another latest event scales a user's scores alike
        pd.testing.assert_frame_equal(after[key], before[key])

    def test_similar_items(self, fitted, data):
        if not self.model_class.has_similar_items:
            with pytest.raises(RecmillError, match="does not produce similar items"):
                fitted.similar_items(k=3)
            return
        sim = fitted.similar_items(["i0", "i20"], k=4)
        assert list(sim.columns) == ["item_id", "similar_item_id", "rank", "score"]
        assert (sim["item_id"] != sim["similar_item_id"]).all()
        assert sim.groupby("item_id")["rank"].agg(list).map(lambda r: r == [1, 2, 3, 4]).all()


def _all_models():
    from recmill.models import MODEL_NAMES, model_class

    return [model_class(name) for name in MODEL_NAMES]
