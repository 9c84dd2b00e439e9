"""The weekly_retrain flow: one Prefect task per pipeline stage, no logic of its own."""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

import pipelines.drift
import pipelines.evaluate
import pipelines.ingest
import pipelines.publish
import pipelines.refit
import pipelines.select
import pipelines.split
import pipelines.train
import pipelines.validate
from recmill.config import Settings, load_settings
from recmill.errors import RecmillError
from recmill.io import Layout, write_json
from recmill.runtime import measured


def _retry_unless_bad_input(task, task_run, state) -> bool:
    """Retry IO hiccups; bad data or config fails the same way every time."""
    try:
        state.result()
    except RecmillError:
        return False
    except Exception:
        return True
    return False


# IO stages (reading sources, writing the warehouse) retry; the rest are deterministic.
io_task = dict(retries=2, retry_delay_seconds=5, retry_condition_fn=_retry_unless_bad_input, cache_policy=NO_CACHE)


@task(name="ingest", **io_task)
def ingest(settings: Settings) -> dict:
    return pipelines.ingest.run(settings)


@task(name="validate", cache_policy=NO_CACHE)
def validate(settings: Settings) -> dict:
    return pipelines.validate.run(settings)


@task(name="split", cache_policy=NO_CACHE)
def split(settings: Settings) -> dict:
    return pipelines.split.run(settings)


@task(name="drift", cache_policy=NO_CACHE)
def drift(settings: Settings) -> dict:
    return pipelines.drift.run(settings)


@task(name="train", task_run_name="train-{model}", cache_policy=NO_CACHE)
def train(settings: Settings, model: str) -> dict:
    return pipelines.train.run(settings, model)


@task(name="evaluate", task_run_name="evaluate-{model}", cache_policy=NO_CACHE)
def evaluate(settings: Settings, model: str) -> dict:
    return pipelines.evaluate.run(settings, model)


@task(name="select", cache_policy=NO_CACHE)
def select(settings: Settings) -> dict:
    return pipelines.select.run(settings)


@task(name="refit", cache_policy=NO_CACHE)
def refit(settings: Settings) -> dict:
    return pipelines.refit.run(settings)


@task(name="publish", **io_task)
def publish(settings: Settings) -> dict:
    return pipelines.publish.run(settings)


STAGE_TASKS = (ingest, validate, split, drift, train, evaluate, select, refit, publish)


@flow(name="weekly_retrain")
def weekly_retrain(config: str = "params.yaml", overrides: list[str] | None = None) -> dict:
    """Ingest, validate, split, check drift, train then evaluate every model, gate the
    challenger against the champion, refit, publish. Each stage's wall and CPU seconds and
    peak memory go to the result (``stages``: 'train als', ...) and, as each one ends, to
    reports/stages.json."""
    settings = load_settings(config, overrides or [])
    stages: dict[str, dict] = {}

    def stage(name: str, task, *args):
        try:
            with measured(stages.setdefault(name, {})):
                return task(settings, *args)
        finally:
            write_json(Layout(settings).stage_report, [{"stage": name, **figures} for name, figures in stages.items()])

    for task_ in (ingest, validate, split, drift):
        stage(task_.name, task_)
    for model in settings.train.models:
        stage(f"train {model}", train, model)
    for model in settings.train.models:  # after every training: evaluation slices by segment
        stage(f"evaluate {model}", evaluate, model)
    stage("select", select)
    stage("refit", refit)
    return {**stage("publish", publish), "stages": stages}
