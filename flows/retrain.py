"""The weekly_retrain flow: one Prefect task per pipeline stage (per model where the stage
is per model), and the order they run in."""

from __future__ import annotations

from contextlib import contextmanager

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.task_runners import ProcessPoolTaskRunner

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
from recmill.io import Layout, read_json, write_json
from recmill.models import REGISTRY
from recmill.runtime import measured_run, quiet_input_errors

quiet_input_errors()  # here, so pool workers, which import this module to run its tasks, do it too


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


@task(name="refit", task_run_name="refit-{model}", cache_policy=NO_CACHE)
def refit(settings: Settings, model: str) -> tuple[dict, dict]:
    return measured_run(pipelines.refit.run_model, settings, model)


@task(name="publish", **io_task)
def publish(settings: Settings) -> tuple[dict, dict]:
    return measured_run(pipelines.publish.run, settings)


STAGE_TASKS = (ingest, validate, split, drift, train, evaluate, select, refit, publish)


def longest_first(models: list[str], step: str, previous: dict[str, float]) -> list[str]:
    """The models by their wall time in the previous run, longest first, and without one the
    heavy models first: the longest fits start at once instead of finishing alone at the end."""
    return sorted(models, key=lambda m: (-previous.get(f"{step} {m}", 0.0), not REGISTRY[m].heavy))


@contextmanager
def worker_pool(workers: int):
    """Prefect's process pool, its workers reporting to this flow's API server (without the
    address each worker would start a temporary server of its own); None for one worker."""
    if workers == 1:
        yield None
        return
    with get_client(sync_client=True) as client:
        url = str(client.api_url)
    with temporary_settings({PREFECT_API_URL: url}), ProcessPoolTaskRunner(max_workers=workers) as runner:
        yield runner


@flow(name="weekly_retrain")
def weekly_retrain(config: str = "params.yaml", overrides: list[str] | None = None) -> dict:
    """Ingest, validate, split, check drift, train then evaluate every model, gate the
    challenger against the champion, refit, publish. With train.worker_count above 1 the
    per-model tasks run that many at a time in one pool of processes: a model is evaluated
    as soon as it and the models its evaluation reads are trained, and the longest fits of
    the previous run start first. Each task returns its result and its figures (wall and
    CPU seconds, peak memory); the figures go to the result (``stages``: 'train als', ...)
    and to reports/stages.json, where a stage is 'running' until it ends."""
    settings = load_settings(config, overrides or [])
    report = Layout(settings).stage_report
    previous = {s["stage"]: s.get("wall_s", 0.0) for s in read_json(report)} if report.exists() else {}
    stages: dict[str, dict] = {}

    def record(name: str, status: str, figures: dict | None = None) -> None:
        stages[name] = {**(figures or {}), "status": status}
        write_json(report, [{"stage": n, **f} for n, f in stages.items()])

    def stage(name: str, task_, *args):
        record(name, "running")
        try:
            result, figures = task_(settings, *args)
        except BaseException:
            record(name, "failed")
            raise
        record(name, "ok", figures)
        return result

    def each(step, models: list[str], futures: dict | None) -> None:
        """Record step's stage of each model, in the settings' order: run here one after the
        other, or wait for its future from the pool."""
        for model in models:
            if futures is None:
                stage(f"{step.name} {model}", step, model)
            else:
                stage(f"{step.name} {model}", lambda _settings, f=futures[model]: f.result())

    stage("ingest", ingest)
    stage("validate", validate)
    events = sum(stage("split", split).values())
    stage("drift", drift)
    models = settings.train.models
    with worker_pool(settings.train.worker_count(events)) as pool:

        def submit(step, names: list[str], after=lambda model: ()) -> dict | None:
            if pool is None:
                return None
            return {m: pool.submit(step, {"settings": settings, "model": m}, wait_for=list(after(m)))
                    for m in longest_first(names, step.name, previous)}

        trained = submit(train, models)
        evaluated = submit(evaluate, models, lambda m: [trained[n] for n in pipelines.evaluate.reads(settings, m)])
        each(train, models, trained)
        each(evaluate, models, evaluated)
        selection = stage("select", select)
        refits = pipelines.refit.models_to_refit(settings, selection)
        each(refit, refits, submit(refit, refits))
    return {**stage("publish", publish), "stages": stages}
