"""Process-wide settings for running offline and quietly; called by each entry point."""

from __future__ import annotations

import os

OFFLINE_DEFAULTS = {
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "GX_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "DVC_NO_ANALYTICS": "1",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "recmill",  # the stages' own log lines show in Prefect's
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",  # ... and outside a flow stay local
    "OPENBLAS_NUM_THREADS": "1",  # implicit runs its own threads; BLAS threads on top only contend
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def offline_defaults() -> None:
    for key, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)
