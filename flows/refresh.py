"""The refresh flow: between weekly retrains, the events that arrived since the last publish
folded into their users' lists (pipelines.refresh), schedulable like the weekly one (hourly
by default, params.yaml's refresh.cron)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task

import pipelines.refresh
from flows.retrain import notify_failure
from recmill.config import Settings
from recmill.errors import RunInProgress
from recmill.io import Layout
from recmill.runtime import measured_run, one_run_at_a_time
from recmill.settings import load_settings


@task(name="fold-in", retries=0)
def fold_in(settings: Settings) -> tuple[dict, dict]:
    return measured_run(pipelines.refresh.run, settings)


@flow(name="refresh", on_failure=[notify_failure], on_crashed=[notify_failure])
def refresh(config: str = "params.yaml", overrides: list[str] | None = None) -> dict:
    """Fold the new events of refresh.increments into the champion's and buy_again's lists
    of their users and republish those rows. It holds the weekly run's locks: while a
    retrain runs, a refresh does nothing (the retrain's publish would replace its rows)
    and says so."""
    settings = load_settings(config, overrides or [])
    warehouse = Path(settings.publish.warehouse)
    try:
        with one_run_at_a_time(Layout(settings).data / ".run.lock", warehouse.with_name(f".{warehouse.name}.run.lock")):
            result, figures = fold_in(settings)
    except RunInProgress as exc:  # the next refresh after the run folds in what this one would have
        get_run_logger().info("refresh skipped: %s", exc)
        return {"run_id": None, "events": 0, "users": 0, "why": str(exc), "figures": {"wall_s": 0.0}}
    return {**result, "figures": figures}
