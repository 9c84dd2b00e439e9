"""The weekly_retrain flow: one Prefect task per pipeline stage (per model where the stage
is per model), and the order they run in."""

from __future__ import annotations

import contextvars
import functools
import hashlib
import logging
import threading
from contextlib import contextmanager
from pathlib import Path

from prefect import Task, flow, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.futures import PrefectFuture
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
from flows.artifacts import create_run_artifacts, task_progress
from recmill import progress
from recmill.config import Settings
from recmill.errors import RecmillError
from recmill.fits import digest, keep_fit_data, shares_fits
from recmill.io import Layout, read_json, run_info, write_json
from recmill.models import model_class
from recmill.notify import FAILED, MODELS_FAILED, SEVERE_DRIFT, failed_models, held_by_drift, notice, send
from recmill.runtime import (
    measured_run,
    one_run_at_a_time,
    quiet_input_errors,
    stop_if_signalled,
    stop_signalled,
    use_threads,
    worker_threads,
)
from recmill.settings import load_settings
from recmill.tracking import Tracker

log = logging.getLogger("recmill")
quiet_input_errors()  # here, so pool workers, which import this module to run its tasks, do it too
progress.use(task_progress)  # long loops show in the Prefect UI (pool workers too)


def _retry_unless_bad_input(task, task_run, state) -> bool:
    """Retry IO hiccups; bad data or config fails the same way every time, and a stopped run
    stays stopped."""
    if stop_signalled():
        return False
    try:
        state.result()
    except RecmillError:
        return False
    except Exception:
        return True
    return False


CODE_PACKAGES = ("recmill", "pipelines", "flows")


@functools.cache
def code_version() -> str:
    """A digest of the pipeline's source files: a stage reused across a code change would
    hold what the old code made."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(p for package in CODE_PACKAGES for p in (root / package).rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def stage_key(settings: Settings, stage: str, model: str | None = None) -> str | None:
    """What a stage's result is reused by within one pipeline run: the run (its id and data),
    the settings and the code; None before ingest opened a run."""
    layout = Layout(settings)
    if not layout.run_info.exists():
        return None
    info = read_json(layout.run_info)
    return digest([stage, model, info["run_id"], info["data_fingerprint"], settings.to_json(), code_version()])


def _run_stage_key(context, parameters: dict) -> str | None:
    return stage_key(parameters["settings"], context.task.name, parameters.get("model"))


# IO stages (reading sources, writing the warehouse) retry; the rest are deterministic.
io_task = dict(retries=2, retry_delay_seconds=5, retry_condition_fn=_retry_unless_bad_input, cache_policy=NO_CACHE)
# a stage that finished is reused when its run is started again (pipelines.ingest resumes it)
resumable = dict(cache_key_fn=_run_stage_key, persist_result=True)


@task(name="ingest", **io_task)
def ingest(settings: Settings) -> tuple[dict, dict]:
    return measured_run(pipelines.ingest.run, settings)


@task(name="validate", **resumable)
def validate(settings: Settings) -> tuple[dict, dict]:
    return measured_run(pipelines.validate.run, settings)


@task(name="split", **resumable)
def split(settings: Settings) -> tuple[dict, dict]:
    return measured_run(pipelines.split.run, settings)


@task(name="drift", **resumable)
def drift(settings: Settings) -> tuple[dict, dict]:
    return measured_run(pipelines.drift.run, settings)


@task(name="train", task_run_name="train-{model}", **resumable)
def train(settings: Settings, model: str) -> tuple[dict, dict]:
    return measured_run(pipelines.train.run, settings, model)


@task(name="evaluate", task_run_name="evaluate-{model}", **resumable)
def evaluate(settings: Settings, model: str) -> tuple[dict, dict]:
    return measured_run(pipelines.evaluate.run, settings, model)


@task(name="select", **resumable)
def select(settings: Settings) -> tuple[dict, dict]:
    return measured_run(pipelines.select.run, settings)


@task(name="refit", task_run_name="refit-{model}", **resumable)
def refit(settings: Settings, model: str) -> tuple[dict, dict]:
    return measured_run(pipelines.refit.run_model, settings, model)


@task(name="publish", **io_task)
def publish(settings: Settings) -> tuple[dict, dict]:
    return measured_run(pipelines.publish.run, settings)


STAGE_TASKS = (ingest, validate, split, drift, train, evaluate, select, refit, publish)


def longest_first(models: list[str], step: str, previous: dict[str, float]) -> list[str]:
    """The models by their wall time in the previous run, longest first, and without one the
    heavy models first: the longest fits start at once instead of finishing alone at the end."""
    return sorted(models, key=lambda m: (-previous.get(f"{step} {m}", 0.0), not model_class(m).heavy))


def training_order(settings: Settings, models: list[str]) -> list[str]:
    """The models trained here one at a time: those every evaluation reads, then two_stage's
    generators (it serves from their fits), then the heavy ones, then the others, each group
    in the settings' order. The lighter fits train beside a process evaluating what is
    trained; a heavy one needs the memory to itself, and the evaluations of what trained
    before it wait for the fits after it."""
    groups = (
        lambda m: m in pipelines.evaluate.read_by_all(settings),
        lambda m: shares_fits(settings, m) and not model_class(m).heavy,
        lambda m: model_class(m).heavy,
    )
    return sorted(models, key=lambda m: next((i for i, member in enumerate(groups) if member(m)), len(groups)))


@contextmanager
def worker_pool(workers: int, alone: bool = True):
    """Prefect's process pool, its workers reporting to this flow's API server (without the
    address each worker would start a temporary server of its own) and sharing the cores
    between them; None for one worker (alone: nothing runs beside it), whose models then use
    every core."""
    if workers == 1 and alone:
        yield None
        return
    with get_client(sync_client=True) as client:
        url = str(client.api_url)
    with temporary_settings({PREFECT_API_URL: url}), ProcessPoolTaskRunner(
        max_workers=workers, initializer=use_threads, initargs=(worker_threads(workers),)
    ) as runner:
        yield runner


class Evaluations:
    """Runs step (evaluate) for the trained models in a pool while this process trains the
    others, at most ``at_most(n)`` at a time: none beside a heavy fit, one beside a lighter
    one, after the training as many as the pool has workers. A model's evaluation starts once
    it and the models it reads are trained, in the order that happens; ``evaluations[model]``
    waits for its start."""

    def __init__(self, step: Task, runner, settings: Settings):
        self.step, self.runner, self.settings = step, runner, settings
        self.trained: list[str] = []
        self.futures: dict[str, PrefectFuture] = {}
        self.at_once, self.running, self.failure = 0, 0, None
        self.changed = threading.Condition()
        # the flow run's context goes with the thread: the evaluations are its task runs
        threading.Thread(target=contextvars.copy_context().run, args=(self._submit_each,), daemon=True).start()

    def add(self, model: str) -> None:
        with self.changed:
            self.trained.append(model)
            self.changed.notify_all()

    def at_most(self, n: int) -> None:
        """From now on n at a time; returns once no more than n run."""
        with self.changed:
            self.at_once = n
            self.changed.notify_all()
            self.changed.wait_for(lambda: self.running <= n)

    def __getitem__(self, model: str) -> PrefectFuture:
        with self.changed:
            self.changed.wait_for(lambda: model in self.futures or self.failure is not None)
            if model not in self.futures:
                raise RuntimeError(f"evaluate {model} was never started") from self.failure
            return self.futures[model]

    def _ready(self) -> str | None:
        return next((m for m in self.trained if m not in self.futures
                     and all(r in self.trained for r in pipelines.evaluate.reads(self.settings, m))), None)

    def _submit_each(self) -> None:
        try:
            while len(self.futures) < len(self.settings.train.models):
                with self.changed:
                    self.changed.wait_for(lambda: self.running < self.at_once and self._ready() is not None)
                    model, self.running = self._ready(), self.running + 1
                future = self.runner.submit(self.step, {"settings": self.settings, "model": model})
                with self.changed:
                    self.futures[model] = future
                    self.changed.notify_all()
                future.add_done_callback(self._finished)
        except BaseException as exc:  # the flow, waiting for an evaluation, says why it never came
            with self.changed:
                self.failure = exc
                self.changed.notify_all()

    def _finished(self, future: PrefectFuture) -> None:
        with self.changed:
            self.running -= 1
            self.changed.notify_all()


def flow_run_url(flow_run_id) -> str | None:
    from prefect.settings import PREFECT_UI_URL

    ui = PREFECT_UI_URL.value()
    return f"{ui}/runs/flow-run/{flow_run_id}" if ui else None


def notify_failure(flow, flow_run, state) -> None:
    """The flow's failure hook: a notice with the error, when the run's settings name where
    to; the pipeline run's MLflow parent run is marked failed."""
    parameters = flow_run.parameters or {}
    try:
        settings = load_settings(parameters.get("config", "params.yaml"), parameters.get("overrides") or [])
    except RecmillError:  # bad settings: nowhere to send it, and the run says why
        return
    send(settings.flow.notify, notice(FAILED, state.message or "failed", flow_run.name, str(flow_run.id), flow_run_url(flow_run.id)))
    info = Layout(settings).run_info
    parent = read_json(info).get("mlflow_run_id") if info.exists() else None
    if parent:
        tracker = Tracker(settings.tracking)
        if tracker.client.get_run(parent).info.status == "RUNNING":
            tracker.finish(parent, failed=True)


def link_flow_run(settings: Settings, info: dict) -> None:
    """The flow run takes the pipeline run's id as its name, and the pipeline's MLflow parent
    run (named the same) keeps the flow run's id and page: each names the other."""
    from prefect.runtime import flow_run

    with get_client(sync_client=True) as client:
        client.update_flow_run(flow_run.id, name=info["run_id"])
    tracker = Tracker(settings.tracking)
    tracker.client.set_tag(info["mlflow_run_id"], "prefect.flow_run_id", str(flow_run.id))
    url = flow_run_url(flow_run.id)
    if url:
        tracker.client.set_tag(info["mlflow_run_id"], "prefect.flow_run_url", url)


def timed(step: Task, settings: Settings) -> Task:
    """The stage's task with its timeout from flow.timeout_minutes."""
    return step.with_options(timeout_seconds=settings.flow.timeout_seconds(step.name))


@flow(name="weekly_retrain", on_failure=[notify_failure], on_crashed=[notify_failure])
def weekly_retrain(config: str = "params.yaml", overrides: list[str] | None = None) -> dict:
    """Ingest, validate, split, check drift, train then evaluate every model, gate the
    challenger against the champion, refit, publish. With train.worker_count above 1 the
    per-model tasks run that many at a time in one pool of processes, drift beside them in
    this one: a model is evaluated as soon as it and the models its evaluation reads are
    trained, and the longest fits of the previous run start first. With one, the models
    train here one at a time (training_order) and a process evaluates each trained model
    beside the lighter fits, then evaluate.worker_count processes what is left after the
    training. Each task returns its result and
    its figures (wall and CPU seconds, peak memory); the figures go to the result
    (``stages``: 'train als', ...) and to reports/stages.json, where a stage is 'running'
    until it ends. Each task fails
    after flow.timeout_minutes of its stage; a failed run, or a promotion held back by
    severe drift, sends flow.notify a notice; a finished run leaves its metrics, the gate's
    decision, the drift summary and the report paths as artifacts in the Prefect UI. One run
    at a time uses a data folder and a warehouse: a second one stops at once."""
    settings = load_settings(config, overrides or [])
    warehouse = Path(settings.publish.warehouse)
    with one_run_at_a_time(Layout(settings).data / ".run.lock", warehouse.with_name(f".{warehouse.name}.run.lock")):
        return run_stages(settings)


def run_stages(settings: Settings) -> dict:
    """weekly_retrain's stages, in order, inside its flow run."""
    report = Layout(settings).stage_report
    previous = {s["stage"]: s.get("wall_s", 0.0) for s in read_json(report)} if report.exists() else {}
    stages: dict[str, dict] = {}

    def record(name: str, status: str, figures: dict | None = None) -> None:
        stages[name] = {**(figures or {}), "status": status}
        write_json(report, [{"stage": n, **f} for n, f in stages.items()])

    def stage(name: str, state_of) -> object:
        """Run or wait for one stage's task (state_of() returns its final state) and record
        its figures: 'reused' when the task's result came from an earlier attempt of this run."""
        stop_if_signalled()
        record(name, "running")
        try:
            state = state_of()
            stop_if_signalled()
            result, figures = state.result()
        except BaseException:
            record(name, "failed")
            raise
        record(name, "reused" if state.name == "Cached" else "ok", figures)
        return result

    def here(step: Task, *args):
        return lambda: timed(step, settings)(settings, *args, return_state=True)

    def each(step, models: list[str], futures: dict | None) -> None:
        """Record step's stage of each model, in the settings' order: run here one after the
        other, or wait for its future from the pool."""
        for model in models:
            if futures is None:
                stage(f"{step.name} {model}", here(step, model))
            else:
                stage(f"{step.name} {model}", lambda f=futures[model]: (f.wait(), f.state)[1])

    link_flow_run(settings, stage("ingest", here(ingest)))
    stage("validate", here(validate))
    events = sum(stage("split", here(split)).values())
    models = settings.train.models
    with worker_pool(settings.train.worker_count(events)) as pool:

        def submit(step, names: list[str], after=lambda model: ()) -> dict | None:
            if pool is None:
                return None
            return {m: pool.submit(timed(step, settings), {"settings": settings, "model": m}, wait_for=list(after(m)))
                    for m in longest_first(names, step.name, previous)}

        trained = submit(train, models)
        evaluated = submit(evaluate, models, lambda m: [trained[n] for n in pipelines.evaluate.reads(settings, m)])
        # nothing before the gate reads drift's result: with a pool it runs here while the
        # workers start and train (where memory allows a pool at all), else before the trains
        stage("drift", here(drift))
        if pool is None:  # trained here one at a time, evaluated in processes that hold no training data
            workers = settings.evaluate.worker_count()
            with worker_pool(workers, alone=False) as evaluators:
                evaluations = Evaluations(timed(evaluate, settings), evaluators, settings)
                for model in training_order(settings, models):
                    evaluations.at_most(0 if model_class(model).heavy else 1)
                    each(train, [model], None)
                    evaluations.add(model)
                keep_fit_data()
                evaluations.at_most(workers)
                each(evaluate, models, evaluations)
        else:
            each(train, models, trained)
            each(evaluate, models, evaluated)
        selection = stage("select", here(select))
        if stages["select"]["status"] == "ok":  # a reused decision was announced by its first attempt
            from prefect.runtime import flow_run

            for event, message in ((SEVERE_DRIFT, held_by_drift(selection)), (MODELS_FAILED, failed_models(selection))):
                if message:
                    send(settings.flow.notify, notice(event, message, flow_run.name, flow_run.id, flow_run_url(flow_run.id)))
        refits = pipelines.refit.models_to_refit(settings, selection)
        each(refit, refits, submit(refit, refits))
    reused = [name for name, s in stages.items() if s["status"] == "reused"]
    if reused:
        log.info("resumed run %s: reused %s", run_info(settings)["run_id"], ", ".join(reused))
    published = stage("publish", here(publish))
    if published.get("dashboard"):
        pipelines.publish.dashboard(settings, published["run_id"])  # again, with the publish stage's own figures
    create_run_artifacts(settings, published["run_id"])
    return {**published, "stages": stages}
