"""The stages' own decisions on hand-written rows: the challenger and its score, which
models refit, the evaluation document, the model_metrics rows, the lists a user gets now."""

from datetime import datetime

import pandas as pd
import pytest

from pipelines.publish import metric_rows, run_status
from pipelines.refit import models_to_refit
from pipelines.select import choose, evaluation_document, metric_kind, unscored, valid_scores
from recmill.config import Settings


def metrics_file(valid: float, test: float, slices: dict | None = None) -> dict:
    return {"mlflow_run_id": "r", "valid": {"ndcg@10": valid}, "test": {"ndcg@10": test, "coverage@10": 0.5},
            "slices": {"valid": {}, "test": slices or {}}}


def test_the_challenger_is_the_best_valid_score_and_a_tie_goes_to_the_first_listed():
    metrics = {"popularity": metrics_file(0.10, 0.2), "als": metrics_file(0.30, 0.1), "mf": metrics_file(0.30, 0.9),
               "ease": {"mlflow_run_id": "r", "skipped": "too many items"}, "ncf": {"mlflow_run_id": "r", "failed": "ValueError: nan"}}
    scores, skipped = valid_scores(metrics, ["popularity", "als", "mf", "ease", "ncf"], "ndcg@10")
    assert scores == {"popularity": 0.10, "als": 0.30, "mf": 0.30}
    assert skipped == {"ease": "too many items", "ncf": "failed to train: ValueError: nan"}
    assert choose(scores) == "als"  # the test figure (mf's 0.9) plays no part
    assert choose({"a": 0.1, "b": 0.2}) == "b"
    with pytest.raises(ValueError, match="no valid ndcg@5; add 5 to evaluate.k"):
        valid_scores(metrics, ["als"], "ndcg@5")


def test_a_buy_again_model_without_figures_is_skipped_and_not_refitted():
    # a shop whose training slices hold no repeat purchase: reorder has nothing to be judged by,
    # so it is not trained on all the data (where a few repeats could make an unjudged model)
    metrics = {"reorder": {"mlflow_run_id": "r", "skipped": "no user has the same item in two orders"}, "popularity": metrics_file(0.1, 0.1)}
    assert unscored(metrics, ["reorder", "popularity"]) == {"reorder": "no user has the same item in two orders"}
    settings = Settings.model_validate({"train": {"models": ["popularity", "reorder"]}})
    selection = {"decision": "promote", "chosen": "popularity", "skipped": unscored(metrics, ["reorder"])}
    assert models_to_refit(settings, selection) == ["popularity"]
    assert models_to_refit(settings, {**selection, "skipped": {}}) == ["popularity", "reorder"]


def test_metrics_are_told_apart_by_kind():
    assert [metric_kind(k) for k in ("ndcg@10", "rmse", "coverage@5", "basket_f1", "recall@20")] == [
        "ranking", "prediction", "business", "prediction", "ranking"]


@pytest.mark.parametrize(
    ("decision", "ab_test", "expected"),
    [
        ("promote", False, ["random", "content", "segments"]),  # the challenger, and the models with output of their own
        ("keep", False, ["content", "segments"]),               # the champion publishes: the challenger is not refitted
        ("keep", True, ["random", "content", "segments"]),      # an A/B test publishes the challenger's lists too
    ],
)
def test_which_models_refit(decision, ab_test, expected):
    models = ["popularity", "random", "content", "segments", "ease"]
    settings = Settings.model_validate({"train": {"models": models}, "gate": {"ab_test": ab_test}})
    selection = {"decision": decision, "chosen": "random", "skipped": {"ease": "too many items"}}
    assert models_to_refit(settings, selection) == expected


def test_the_evaluation_document_compares_every_model_with_the_baseline():
    fairness = {"fairness=gender": {"equal_opportunity_gap@10": 0.1}, "activity=heavy": {"ndcg@10": 0.4}}
    metrics = {"popularity": metrics_file(0.1, 0.2), "als": metrics_file(0.3, 0.3, fairness), "ease": {"skipped": "too big"}}
    document = evaluation_document(metrics, "popularity", "run1", "als", {}, datetime(2026, 1, 5, 3))
    assert document["run_id"] == "run1" and document["timestamp"] == "2026-01-05T03:00:00" and document["model"] == "als"
    assert set(document["models"]) == {"popularity", "als"}
    als = document["models"]["als"]
    assert als["comparison_to_baseline"]["ndcg@10"] == pytest.approx(50.0)  # 0.3 against 0.2: +50%
    assert document["models"]["popularity"]["comparison_to_baseline"] is None
    assert als["metrics"]["ranking"] == {"ndcg@10": 0.3} and als["metrics"]["business"] == {"coverage@10": 0.5}
    assert als["metrics"]["fairness"] == {"gender": {"equal_opportunity_gap@10": 0.1}}
    assert als["slices"] == {"activity=heavy": {"ndcg@10": 0.4}}
    assert document["metrics"] == als["metrics"]  # the challenger's at the top level


def test_metric_rows_hold_every_figure_with_its_split_slice_and_k():
    metrics = {"als": {"mlflow_run_id": "m1", "valid": {"ndcg@10": 0.3}, "test": {"ndcg@10": 0.25, "rmse": 0.9},
                       "slices": {"test": {"activity=heavy": {"ndcg@10": 0.5}}}},
               "ease": {"mlflow_run_id": "m2", "skipped": "too big"}}
    evaluation = {"baseline": "popularity", "models": {"als": {"comparison_to_baseline": {"ndcg@10": 25.0, "rmse": None}}}}
    rows = metric_rows("run1", metrics, evaluation)
    assert rows[["run_id", "model", "model_version"]].drop_duplicates().values.tolist() == [["run1", "als", "m1"]]
    got = [(split, metric, None if pd.isna(k) else int(k), value, slice_)
           for split, metric, k, value, slice_ in rows[["split", "metric", "k", "value", "slice"]].itertuples(index=False)]
    assert got == [
        ("valid", "ndcg", 10, 0.3, "all"), ("test", "ndcg", 10, 0.25, "all"), ("test", "rmse", None, 0.9, "all"),
        ("test", "ndcg", 10, 0.5, "activity=heavy"), ("test", "ndcg", 10, 25.0, "vs_baseline=popularity"),
    ]


def test_todays_lists_leave_out_what_users_have_now_and_still_hold_k_items():
    from recmill.champion import lists_now
    from recmill.models.popularity import PopularityRecommender
    from tests.models.contract import make_data
    from tests.unit.test_output_checks import pairs

    model = PopularityRecommender(seed=1).fit(make_data())
    users = ["u0", "u1", "new"]
    known = {u: set(model.item_ids_[model.history(r)]) for u, r in zip(users[:2], model.user_rows(users[:2]))}
    before = lists_now(model, users, 5, pairs(known))
    bought_since = set(before.loc[before["user_id"] == "u1", "item_id"].head(3))  # u1 bought its top 3 after the fit
    now = lists_now(model, users, 5, pairs({**known, "u1": known["u1"] | bought_since}))
    assert now.groupby("user_id")["rank"].apply(list).to_dict() == {u: [1, 2, 3, 4, 5] for u in users}
    assert not bought_since & set(now.loc[now["user_id"] == "u1", "item_id"])
    assert list(now.loc[now["user_id"] == "u1", "item_id"][:2]) == list(before.loc[before["user_id"] == "u1", "item_id"][3:])
    for user in ("u0", "new"):  # nothing new for them: the same lists
        assert list(now.loc[now["user_id"] == user, "item_id"]) == list(before.loc[before["user_id"] == user, "item_id"])


def test_the_run_status_names_severe_drift_and_the_models_that_failed():
    assert run_status(False, {}) == "success"
    assert run_status(True, {"ncf": "e", "mf": "e"}) == "success, severe drift, ncf failed to train, mf failed to train"


def test_the_most_unseen_items_count_what_a_user_has_now_beyond_what_the_model_saw():
    from recmill.champion import most_unseen
    from recmill.models.popularity import PopularityRecommender
    from tests.models.contract import make_data
    from tests.unit.test_output_checks import pairs

    model = PopularityRecommender(seed=1).fit(make_data())
    seen = {u: set(model.item_ids_[model.history(r)]) for u, r in zip(model.user_ids_, range(len(model.user_ids_)))}
    assert most_unseen(model.user_ids_, model.item_ids_, model.seen_, pairs(seen)) == 0
    u0_new = set(model.item_ids_) - seen["u0"]
    grown = {**seen, "u0": seen["u0"] | set(sorted(u0_new)[:2]), "newcomer": {"not-an-item", *sorted(model.item_ids_)[:2]}}
    assert most_unseen(model.user_ids_, model.item_ids_, model.seen_, pairs(grown)) == 3  # the newcomer's three: none seen, one not even in the catalogue
