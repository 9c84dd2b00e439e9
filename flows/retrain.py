"""The weekly_retrain flow: one Prefect task per pipeline stage, no logic of its own."""

from __future__ import annotations

from prefect import flow, task
from prefect.task_runners import ProcessPoolTaskRunner
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
from recmill.runtime import measured_run


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
def ingest(settings: Settings) -> tuple[dict, dict]:
    return measured_run(pipelines.ingest.run, settings)


@task(name="validate", cache_policy=NO_CACHE)
def validate(settings: Settings) -> tuple[dict, dict]:
    return measured_run(pipelines.validate.run, settings)


@task(name="split", cache_policy=NO_CACHE)
def split(settings: Settings) -> tuple[dict, dict]:
    return measured_run(pipelines.split.run, settings)


@task(name="drift", cache_policy=NO_CACHE)
def drift(settings: Settings) -> tuple[dict, dict]:
    return measured_run(pipelines.drift.run, settings)


@task(name="train", task_run_name="train-{model}", cache_policy=NO_CACHE)
def train(settings: Settings, model: str) -> tuple[dict, dict]:
    return measured_run(pipelines.train.run, settings, model)


@task(name="evaluate", task_run_name="evaluate-{model}", cache_policy=NO_CACHE)
def evaluate(settings: Settings, model: str) -> tuple[dict, dict]:
    return measured_run(pipelines.evaluate.run, settings, model)


@task(name="select", cache_policy=NO_CACHE)
def select(settings: Settings) -> tuple[dict, dict]:
    return measured_run(pipelines.select.run, settings)


@task(name="refit", cache_policy=NO_CACHE)
def refit(settings: Settings) -> tuple[dict, dict]:
    return measured_run(pipelines.refit.run, settings)


@task(name="publish", **io_task)
def publish(settings: Settings) -> tuple[dict, dict]:
    return measured_run(pipelines.publish.run, settings)


STAGE_TASKS = (ingest, validate, split, drift, train, evaluate, select, refit, publish)


@flow(name="weekly_retrain")
def weekly_retrain(config: str = "params.yaml", overrides: list[str] | None = None) -> dict:
    """Ingest, validate, split, check drift, train then evaluate every model, gate the
    challenger against the champion, refit, publish. With train.workers above 1 the models
    train (then are evaluated) that many at a time, each in a process of its own. Each
    task returns its result and its figures (wall and CPU seconds, peak memory); the
    figures go to the result (``stages``: 'train als', ...) and to reports/stages.json,
    where a stage is 'running' until it ends."""
    settings = load_settings(config, overrides or [])
    stages: dict[str, dict] = {}

    def record(name: str, status: str, figures: dict | None = None) -> None:
        stages[name] = {**(figures or {}), "status": status}
        write_json(Layout(settings).stage_report, [{"stage": n, **f} for n, f in stages.items()])

    def stage(name: str, task_, *args):
        record(name, "running")
        try:
            result, figures = task_(settings, *args)
        except BaseException:
            record(name, "failed")
            raise
        record(name, "ok", figures)
        return result

    for task_ in (ingest, validate, split, drift):
        stage(task_.name, task_)
    for task_ in (train, evaluate):  # every model trained before any is evaluated: evaluation slices by segment
        if settings.train.workers == 1:
            for model in settings.train.models:
                stage(f"{task_.name} {model}", task_, model)
            continue
        with ProcessPoolTaskRunner(max_workers=settings.train.workers) as runner:
            futures = {model: runner.submit(task_, {"settings": settings, "model": model}) for model in settings.train.models}
            for model, future in futures.items():
                stage(f"{task_.name} {model}", lambda _settings, f=future: f.result())
    stage("select", select)
    stage("refit", refit)
    return {**stage("publish", publish), "stages": stages}
