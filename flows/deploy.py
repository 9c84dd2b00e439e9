"""The deployments: weekly_retrain on params.yaml's schedule and the refresh flow on
refresh.cron, served by this process (`recmill schedule`); prefect.yaml declares the same
deployments for `prefect deploy`."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from flows.refresh import refresh
from flows.retrain import weekly_retrain
from recmill.config import ScheduleConfig
from recmill.errors import ConfigError
from recmill.settings import load_settings

REFRESH_DEPLOYMENT = "refresh"


def schedule(cfg: ScheduleConfig, cron: str | None = None):
    """The deployment's cron schedule (cfg's, or this cron in cfg's time zone); a bad cron or
    time zone is a ConfigError naming it."""
    from prefect.client.schemas.schedules import CronSchedule

    cron = cron or cfg.cron
    try:
        CronSchedule(cron=cron, timezone=cfg.timezone)
    except ValidationError as exc:
        reason = "; ".join(e["msg"] for e in exc.errors())
        raise ConfigError(f"schedule: cron '{cron}' in time zone '{cfg.timezone}' is not a schedule: {reason}") from None
    from prefect.schedules import Cron

    return Cron(cron, timezone=cfg.timezone)


def serve_deployments(config: Path, overrides: list[str]) -> None:
    """Register the weekly and the refresh deployments with the Prefect server at
    PREFECT_API_URL and run their flow runs here, scheduled or started by hand, until
    stopped. Every run reads ``config`` with ``overrides`` unless the run gives its own
    parameters."""
    from prefect import serve
    from prefect.settings import PREFECT_API_URL

    settings = load_settings(config, overrides)
    cfg = settings.schedule
    weekly, hourly = schedule(cfg), schedule(cfg, settings.refresh.cron)
    if not PREFECT_API_URL.value():
        raise ConfigError(
            "recmill schedule needs a Prefect server that outlives it: start one (`make serve`, or "
            "`prefect server start`) and set PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    parameters = {"config": str(Path(config).resolve() if Path(config).exists() else config), "overrides": list(overrides)}
    serve(
        weekly_retrain.to_deployment(
            name=cfg.deployment, schedules=[weekly], concurrency_limit=cfg.concurrency_limit, parameters=parameters, tags=["recmill"],
            description="The weekly retrain: ingest, validate, split, drift, train, evaluate, select, refit, publish.",
        ),
        refresh.to_deployment(
            name=REFRESH_DEPLOYMENT, schedules=[hourly], concurrency_limit=1, parameters=parameters, tags=["recmill"],
            description="Between retrains: the new events of refresh.increments folded into their users' lists.",
        ),
    )
