"""What each run shows in the Prefect UI: its metrics by model, the gate's decision with
its reasons, the drift summary, and where the reports are."""

from __future__ import annotations

import logging
import time

import pandas as pd
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, create_table_artifact, update_progress_artifact

from recmill.config import Settings
from recmill.dashboard import run_folder
from recmill.io import Layout, read_json

SHOWN_METRICS = ("ndcg", "precision", "recall", "map", "coverage")


def metrics_table(settings: Settings) -> list[dict]:
    """One row per ranking model evaluated: each SHOWN_METRICS at the selection k on valid and test."""
    k, layout, rows = settings.evaluate.selection_k, Layout(settings), []
    for model in settings.train.models:
        scored = read_json(layout.metrics_file(model))
        figures = {f"{split} {m}@{k}": scored[split].get(f"{m}@{k}") for split in ("valid", "test") for m in SHOWN_METRICS if split in scored}
        if any(v is not None for v in figures.values()):
            rows.append({"model": model, **{name: round(v, 4) for name, v in figures.items() if v is not None}})
    return rows


def decision_markdown(selection: dict) -> str:
    lines = [
        f"## Gate: {selection['decision']}",
        "",
        f"- challenger: {selection['challenger']} ({selection['metric']} on valid {selection['scores'][selection['chosen']]:.4f})",
        f"- champion before this run: {selection['champion'] or 'none'}",
    ]
    if selection.get("p_value") is not None:
        lines.append(
            f"- on test: challenger {selection['challenger_value']:.4f}, champion {selection['champion_value']:.4f}, p = {selection['p_value']:.4f}"
        )
    lines += ["", "Reasons:", *(f"- {r}" for r in selection["reasons"])]
    return "\n".join(lines)


def drift_markdown(drift: dict) -> str:
    lines = [f"## Data drift: {drift['summary']}"]
    drifted = [r for r in drift["rows"] if r["drifted"]]
    if drifted:
        table = pd.DataFrame(drifted)[["column", "statistic", "value", "threshold"]]
        lines += ["", table.to_markdown(index=False, floatfmt=".4f")]
    return "\n".join(lines)


def reports_markdown(settings: Settings, run_id: str) -> str:
    layout = Layout(settings)
    where = {
        "dashboard": run_folder(settings, run_id) / "index.html",
        "warehouse": settings.publish.warehouse,
        "validation": layout.validation,
        "drift": layout.drift,
        "evaluation": layout.evaluation / f"{run_id}.json",
        "gate decision": layout.selection,
        "stage times and memory": layout.stage_report,
    }
    lines = ["## Reports", ""] + [f"- {name}: [{path}]({path.resolve().as_uri()})" for name, path in where.items()]
    parent = read_json(layout.run_info).get("mlflow_run_id")
    if parent:
        lines.append(f"- MLflow: the parent run {parent} (named {run_id}) in experiment '{settings.tracking.experiment}', a run nested in it per fit")
    return "\n".join(lines)


def create_run_artifacts(settings: Settings, run_id: str) -> None:
    layout = Layout(settings)
    selection = read_json(layout.selection)
    table = metrics_table(settings)
    if table:
        create_table_artifact(table, key="model-metrics", description=f"Run {run_id}: holdout metrics by model (valid chooses, test reports)")
    create_markdown_artifact(decision_markdown(selection), key="gate-decision", description=f"Run {run_id}: champion or challenger")
    create_markdown_artifact(drift_markdown(read_json(layout.drift / "summary.json")), key="data-drift", description=f"Run {run_id}")
    create_markdown_artifact(reports_markdown(settings, run_id), key="reports", description=f"Run {run_id}: where the reports are")


class TaskProgress:
    """A loop's progress (recmill.progress) as a progress artifact of the running task,
    sent at most every UPDATE_SECONDS and when it completes. The UI losing an update never
    stops the run."""

    UPDATE_SECONDS = 2.0

    def __init__(self, what: str, total: int):
        self.total, self.sent = total, time.monotonic()
        self.artifact = create_progress_artifact(progress=0.0, description=what)

    def update(self, done: int) -> None:
        if done >= self.total or time.monotonic() - self.sent >= self.UPDATE_SECONDS:
            try:
                update_progress_artifact(self.artifact, progress=round(100 * min(done, self.total) / self.total, 1))
            except Exception as exc:  # the API is the UI's, not the run's
                logging.getLogger("recmill").debug("progress not sent: %s", exc)
            self.sent = time.monotonic()

    def close(self) -> None:
        pass


def task_progress(what: str, total: int) -> TaskProgress | None:
    """A progress artifact inside a task run; elsewhere (tests, the library alone) none."""
    from prefect.context import TaskRunContext

    if TaskRunContext.get() is None:
        return None
    try:
        return TaskProgress(what, total)
    except Exception as exc:
        logging.getLogger("recmill").debug("progress not shown: %s", exc)
        return None
