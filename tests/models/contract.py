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
