"""Both drivers run the same stages: dvc.yaml and the Prefect flow name the same set."""

from pathlib import Path

import pytest
import yaml
from prefect import task

import pipelines
from flows.retrain import STAGE_TASKS

REPO = Path(__file__).resolve().parents[2]


def test_dvc_and_flow_name_the_same_stages():
    dvc_stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert list(dvc_stages) == [t.name for t in STAGE_TASKS] == list(pipelines.STAGES)


def test_every_dvc_stage_calls_its_pipeline_module():
    for name, stage in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].items():
        cmd = stage.get("do", stage)["cmd"]
        assert cmd.startswith(f"python -m pipelines {name}"), cmd
        assert (REPO / "pipelines" / f"{name}.py").exists()


def test_a_fits_data_is_built_once_per_process_until_its_files_change(workdir):
    import os

    import pipelines.ingest
    import pipelines.split
    import recmill.fits
    from recmill.fits import KEEP_BUILT, fit_data, keep_fit_data
    from recmill.io import Layout
    from recmill.settings import load_settings
    from tests.integration.conftest import TINY

    settings = load_settings(REPO / "params.yaml", TINY)
    pipelines.ingest.run(settings)
    pipelines.split.run(settings)
    valid, test = fit_data(settings, "valid"), fit_data(settings, "test")
    assert fit_data(settings, "valid") is valid and fit_data(settings, "test") is test
    assert valid.positive.nnz < test.positive.nnz  # test also trains on the valid slice
    strings = lambda data: data.events["item_id"].array._pa_array.chunk(0).buffers()[2].address  # noqa: E731
    assert strings(valid) == strings(test)  # both hold the train slice's item ids, stored once
    heavier = load_settings(REPO / "params.yaml", [*TINY, "interactions.event_weights.purchase=9.0"])
    assert fit_data(heavier, "valid") is not valid  # other settings, other data
    assert KEEP_BUILT == 2 and fit_data(settings, "test") is test and fit_data(settings, "valid") is not valid  # the oldest went
    split = Layout(settings).splits / "train.parquet"
    os.utime(split, ns=(split.stat().st_atime_ns, split.stat().st_mtime_ns + 1))
    again = fit_data(settings, "valid")
    assert again is not fit_data(heavier, "valid") and again.positive.nnz == valid.positive.nnz
    test = fit_data(settings, "test")
    keep_fit_data("test")  # what a stage that needs no more of the others asks
    assert fit_data(settings, "test") is test and fit_data(settings, "valid") is not again
    keep_fit_data()
    assert not recmill.fits._SLICES  # nor the slices they were built from


def test_a_heavy_model_trains_each_fit_holding_no_other_fits_data(workdir, monkeypatch):
    import pipelines.ingest
    import pipelines.split
    import pipelines.train
    import recmill.fits
    from recmill.settings import load_settings
    from tests.integration.conftest import TINY

    settings = load_settings(REPO / "params.yaml", [*TINY, "train.models=[popularity,ncf]", "models.ncf.epochs=1"])
    pipelines.ingest.run(settings)
    pipelines.split.run(settings)
    recmill.fits.keep_fit_data()
    held, fit_model = [], pipelines.train.fit_model

    def recording(settings, model, fit):
        held.append((model, fit, sorted(key[0] for key in recmill.fits._BUILT)))
        return fit_model(settings, model, fit)

    monkeypatch.setattr(pipelines.train, "fit_model", recording)
    for model in ("popularity", "ncf"):
        assert "failed" not in pipelines.train.run(settings, model)
    # popularity keeps the valid fit's data for the next model; ncf (heavy) lets go of each other fit's first
    assert held == [("popularity", "valid", []), ("popularity", "test", ["valid"]), ("ncf", "valid", ["valid"]), ("ncf", "test", [])]


def test_models_start_longest_first_by_the_previous_run_else_heavy_first():
    from flows.retrain import longest_first

    models = ["popularity", "als", "two_stage", "mf", "ncf"]
    assert longest_first(models, "train", {}) == ["two_stage", "ncf", "popularity", "als", "mf"]
    previous = {"train mf": 30.0, "train ncf": 50.0, "train als": 2.0, "evaluate mf": 99.0}
    assert longest_first(models, "train", previous) == ["ncf", "mf", "als", "two_stage", "popularity"]


def test_one_at_a_time_the_models_every_evaluation_reads_train_first_then_the_generators_then_the_heavy_ones():
    from flows.retrain import training_order
    from recmill.config import Settings

    models = ["random", "als", "two_stage", "segments", "mf", "reorder", "popularity", "ncf"]
    assert training_order(Settings(), models) == ["segments", "popularity", "als", "two_stage", "reorder", "ncf", "random", "mf"]


def test_evaluations_run_one_at_a_time_beside_lighter_fits_none_beside_a_heavy_one_then_on_every_worker(prefect_server):
    """An evaluation starts once its model and what every evaluation reads (the baseline,
    the segments) are trained; one runs at a time beside a lighter fit, none beside a heavy
    one, and two once the training is over."""
    import threading
    import time

    from prefect import flow, task
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows.retrain import Evaluations
    from recmill.settings import load_settings

    settings = load_settings(REPO / "params.yaml", ["train.models=[popularity, als, segments, mf, content]"])
    spans, lock = {}, threading.Lock()

    @task
    def evaluate(settings, model: str) -> str:
        started = time.monotonic()
        time.sleep(0.5)
        with lock:
            spans[model] = (started, time.monotonic())
        return model

    @flow
    def train_and_evaluate() -> tuple[dict, dict]:
        fits = {}
        with ThreadPoolTaskRunner(max_workers=2) as runner:
            evaluations = Evaluations(evaluate, runner, settings)
            for model, heavy, seconds in (("popularity", False, 0.3), ("als", False, 0.3), ("segments", False, 0.3), ("mf", True, 1.0), ("content", False, 1.0)):
                evaluations.at_most(0 if heavy else 1)
                started = time.monotonic()
                time.sleep(seconds)  # the fit
                fits[model] = (started, time.monotonic())
                evaluations.add(model)
            evaluations.at_most(2)
            fits["over"] = (time.monotonic(), time.monotonic())
            return fits, {m: evaluations[m].result() for m in settings.train.models}

    fits, results = train_and_evaluate()
    assert results == {m: m for m in settings.train.models}
    assert min(start for start, _ in spans.values()) >= fits["segments"][1]  # every evaluation reads the segments
    assert spans["mf"][0] >= fits["mf"][1] and spans["content"][0] >= fits["content"][1]
    assert all(end <= fits["mf"][0] or start >= fits["mf"][1] for start, end in spans.values())  # none beside the heavy fit
    during = sorted(span for span in spans.values() if span[0] < fits["over"][0])
    assert len(during) >= 2 and all(a[1] <= b[0] for a, b in zip(during, during[1:]))  # one at a time
    after = sorted(span for span in spans.values() if span[0] >= fits["over"][0])
    assert len(after) >= 2 and after[1][0] < after[0][1]  # two at once


@task
def threads_of_a_worker() -> int:
    from recmill.runtime import model_threads

    return model_threads()


def test_a_pools_workers_take_their_share_of_the_cores_and_the_flow_keeps_every_core(prefect_server, monkeypatch):
    from prefect import flow

    from flows.retrain import worker_pool
    from recmill.runtime import THREADS_VARIABLE, cores, model_threads, worker_threads

    monkeypatch.delenv(THREADS_VARIABLE, raising=False)

    @flow
    def both() -> tuple[int, int]:
        with worker_pool(2) as pool:
            return model_threads(), pool.submit(threads_of_a_worker, {}).result()

    assert both() == (cores(), worker_threads(2))


def test_a_fits_holdout_is_built_once_per_process_and_scores_as_a_fresh_one(workdir, monkeypatch):
    import pipelines.ingest
    import pipelines.split
    import recmill.scoring
    from recmill.fits import fit_model
    from recmill.settings import load_settings
    from tests.integration.conftest import TINY

    settings = load_settings(REPO / "params.yaml", [*TINY, "train.models=[popularity,random]"])
    pipelines.ingest.run(settings)
    pipelines.split.run(settings)
    first = recmill.scoring.holdout(settings, "test")
    assert recmill.scoring.holdout(settings, "test") is first and first.truth
    popularity, _ = fit_model(settings, "popularity", "test")
    cached = recmill.scoring.score_ranking(settings, popularity, "test")
    built = []
    monkeypatch.setattr(recmill.scoring, "_HOLDOUTS", {})
    real = recmill.scoring.build_holdout
    monkeypatch.setattr(recmill.scoring, "build_holdout", lambda *a: built.append(a) or real(*a))
    assert recmill.scoring.score_ranking(settings, popularity, "test") == cached  # the same figures from a new one
    other = load_settings(REPO / "params.yaml", [*TINY, "train.models=[popularity,random]", "evaluate.max_users=5"])
    assert len(recmill.scoring.holdout(other, "test").truth) == 5 and len(built) == 2  # other settings, another


def test_the_baselines_lists_are_made_once_per_fit_until_it_is_trained_again(workdir, monkeypatch):
    import pipelines.ingest
    import pipelines.split
    import recmill.scoring
    from recmill.fits import fit_model
    from recmill.io import Layout
    from recmill.settings import load_settings
    from tests.integration.conftest import TINY

    settings = load_settings(REPO / "params.yaml", [*TINY, "train.models=[popularity,random]"])
    pipelines.ingest.run(settings)
    pipelines.split.run(settings)

    def train(model: str):
        fitted, _ = fit_model(settings, model, "test")
        fitted.save(Layout(settings).model_dir(model, "test"))
        return fitted

    train("popularity")
    random = train("random")
    made = []
    real = recmill.scoring.ranked_lists
    monkeypatch.setattr(recmill.scoring, "ranked_lists", lambda model, *a: made.append(model.name) or real(model, *a))
    first = recmill.scoring.score_ranking(settings, random, "test")
    assert recmill.scoring.score_ranking(settings, random, "test") == first
    assert made == ["random", "popularity", "random"]  # the baseline's lists once
    train("popularity")  # its files change: its lists are made again, the same lists
    assert recmill.scoring.score_ranking(settings, random, "test") == first
    assert made == ["random", "popularity", "random", "random", "popularity"]


def test_two_stage_serves_with_the_fits_its_generators_train_on_their_own(workdir, monkeypatch):
    import pipelines.ingest
    import pipelines.split
    from recmill.fits import fit_model
    from recmill.io import Layout
    from recmill.models.als import ALSRecommender
    from recmill.settings import load_settings
    from tests.integration.conftest import TINY

    fits = []
    real = ALSRecommender._fit
    monkeypatch.setattr(ALSRecommender, "_fit", lambda self, data: fits.append(len(data.events)) or real(self, data))
    shared = [*TINY, "train.models=[als,popularity,two_stage]", "models.two_stage.generators=[als,popularity]"]
    settings = load_settings(REPO / "params.yaml", shared)
    pipelines.ingest.run(settings)
    pipelines.split.run(settings)
    two_stage, _ = fit_model(settings, "two_stage", "valid")
    assert len(fits) == 2 and fits[0] < fits[1]  # the label stage's, on less data, then the serving one
    als, _ = fit_model(settings, "als", "valid")
    assert len(fits) == 2  # loaded, not fitted again
    users = list(als.user_ids_[:20])
    assert als.recommend(users, k=5).equals(two_stage.generators_["als"].recommend(users, k=5))
    assert (Layout(settings).shared_fits / "als-valid" / "key").is_file()

    other = load_settings(REPO / "params.yaml", [*shared, "models.als.factors=8"])
    fit_model(other, "als", "valid")
    assert len(fits) == 3  # other settings: fitted anew
    fit_model(load_settings(REPO / "params.yaml", [*TINY, "train.models=[als]"]), "als", "test")
    assert len(fits) == 4 and not (Layout(settings).shared_fits / "als-test").exists()  # no two_stage: nothing to share


def refitted_after_a_run(settings, model: str):
    """Ingest, split, train and evaluate every model, select, then refit ``model``: the run's Layout."""
    import pipelines.evaluate
    import pipelines.ingest
    import pipelines.refit
    import pipelines.select
    import pipelines.split
    import pipelines.train
    from recmill.io import Layout

    pipelines.ingest.run(settings)
    pipelines.split.run(settings)
    for trained in settings.train.models:
        pipelines.train.run(settings, trained)
        pipelines.evaluate.run(settings, trained)
    pipelines.select.run(settings)
    pipelines.refit.run_model(settings, model)
    return Layout(settings)


@pytest.mark.parametrize("refit", ["full", "refresh", "auto"])
def test_later_fits_train_again_or_refresh_the_fit_before(workdir, refit):
    import numpy as np

    from recmill.fits import fit_data
    from recmill.io import read_json
    from recmill.models.als import ALSRecommender
    from recmill.settings import load_settings
    from tests.integration.conftest import TINY

    # auto refreshes above refresh_above_events: the tiny shop's events are above 100
    settings = load_settings(REPO / "params.yaml", [*TINY, "train.models=[popularity,als]", f"train.refit={refit}", "train.refresh_above_events=100"])
    refreshed = refit != "full"
    layout = refitted_after_a_run(settings, "als")
    assert read_json(layout.refit / "als.json")["method"] == ("refresh" if refreshed else "fit")
    valid_fit, test_fit, full_fit = (ALSRecommender.load(layout.model_dir("als", fit)) for fit in ("valid", "test", "full"))
    everything = fit_data(settings, "full")
    # either way the full fit knows every user with their whole history
    assert sorted(full_fit.user_ids_) == sorted(everything.user_ids)
    order = full_fit.user_rows(everything.user_ids)
    assert (full_fit.seen_[order] != everything.positive).nnz == 0
    assert len(everything.events) > len(fit_data(settings, "test").events)
    assert sorted(test_fit.user_ids_) == sorted(fit_data(settings, "test").user_ids)
    # a refresh keeps the item side the fit before it learned; training again learns it anew
    assert np.array_equal(test_fit.item_factors_, valid_fit.item_factors_) == refreshed
    assert np.array_equal(full_fit.item_factors_, test_fit.item_factors_) == refreshed



@pytest.mark.parametrize("refit", ["full", "refresh"])
def test_ncf_trains_its_later_fits_as_long_as_the_fit_before_found_enough_where_the_others_refresh(workdir, refit):
    from recmill.io import read_json
    from recmill.models.ncf import NCFRecommender
    from recmill.settings import load_settings
    from tests.integration.conftest import TINY

    settings = load_settings(
        REPO / "params.yaml",
        [*TINY, "train.models=[popularity,ncf]", f"train.refit={refit}", "models.ncf.epochs=5", "models.ncf.patience=5",
         "models.ncf.learning_rate=0.03"],  # a peak before the last epoch
    )
    layout = refitted_after_a_run(settings, "ncf")
    valid, test, full = (NCFRecommender.load(layout.model_dir("ncf", fit)) for fit in ("valid", "test", "full"))
    assert len(valid.history_["epochs"]) == 5  # patience never ran out
    if refit == "full":
        assert test.config.epochs == full.config.epochs == 5 and read_json(layout.refit / "ncf.json")["method"] == "fit"
    else:  # each later fit trains the epochs the fit before it chose
        assert test.config.epochs == len(test.history_["epochs"]) == valid.history_["best_epoch"] < 5
        assert full.config.epochs == len(full.history_["epochs"]) == test.history_["best_epoch"]
        assert read_json(layout.refit / "ncf.json")["method"] == "shortened fit"
