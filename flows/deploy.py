"""The weekly deployment: weekly_retrain on params.yaml's schedule, served by this process
(`recmill schedule`); prefect.yaml declares the same deployment for `prefect deploy`."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from flows.retrain import weekly_retrain
from recmill.config import ScheduleConfig
from recmill.errors import ConfigError
from recmill.settings import load_settings


def schedule(cfg: ScheduleConfig):
    """The deployment's cron schedule; a bad cron or time zone is a ConfigError naming it."""
    from prefect.client.schemas.schedules import CronSchedule

    try:
        CronSchedule(cron=cfg.cron, timezone=cfg.timezone)
    except ValidationError as exc:
        reason = "; ".join(e["msg"] for e in exc.errors())
        raise ConfigError(f"schedule: cron '{cfg.cron}' in time zone '{cfg.timezone}' is not a schedule: {reason}") from None
    from prefect.schedules import Cron

    return Cron(cfg.cron, timezone=cfg.timezone)


def serve_weekly(config: Path, overrides: list[str]) -> None:
    """Register the deployment with the Prefect server at PREFECT_API_URL and run its flow
    runs here, scheduled or started by hand, until stopped. Every run reads ``config`` with
    ``overrides`` unless the run gives its own parameters."""
    from prefect.settings import PREFECT_API_URL

    cfg = load_settings(config, overrides).schedule
    when = schedule(cfg)
    if not PREFECT_API_URL.value():
        raise ConfigError(
            "recmill schedule needs a Prefect server that outlives it: start one (`make serve`, or "
            "`prefect server start`) and set PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    weekly_retrain.serve(
        name=cfg.deployment,
        schedules=[when],
        global_limit=cfg.concurrency_limit,
        parameters={"config": str(Path(config).resolve() if Path(config).exists() else config), "overrides": list(overrides)},
        tags=["recmill"],
        description="The weekly retrain: ingest, validate, split, drift, train, evaluate, select, refit, publish.",
    )
