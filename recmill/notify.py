"""Telling a person: a JSON notice POSTed to a webhook or handed to a shell command, when
a run fails or severe drift holds a promotion back. Sending never fails the run: a notice
that cannot be delivered is logged."""

from __future__ import annotations

import json
import logging
import os
import subprocess

from recmill.config import NotifyConfig
from recmill.evaluation.gate import HELD_BY_DRIFT

log = logging.getLogger("recmill")
FAILED, SEVERE_DRIFT, MODELS_FAILED = "failed", "severe_drift", "models_failed"


def notice(event: str, message: str, flow_run: str | None = None, flow_run_id: str | None = None, url: str | None = None) -> dict:
    return {"event": event, "message": message, "flow_run": flow_run, "flow_run_id": flow_run_id, "url": url}


def held_by_drift(selection: dict) -> str | None:
    """The gate's reason when severe drift kept this run's challenger from replacing the champion."""
    return next((r for r in selection.get("reasons", []) if r.startswith(HELD_BY_DRIFT)), None)


def failed_models(selection: dict) -> str | None:
    """What to tell a person when models failed to train in this run (the others went on)."""
    failed = selection.get("failed") or {}
    return ("failed to train: " + "; ".join(f"{m} ({error})" for m, error in failed.items())) if failed else None


def send(cfg: NotifyConfig, note: dict) -> list[str]:
    """Deliver the notice to the webhook and the command configured; returns where it went."""
    delivered = []
    if cfg.webhook:
        import httpx

        try:
            httpx.post(cfg.webhook, json=note, timeout=10).raise_for_status()
            delivered.append(cfg.webhook)
        except httpx.HTTPError as exc:
            log.error("notice %s not delivered to %s: %s", note["event"], cfg.webhook, exc)
    if cfg.command:
        try:
            subprocess.run(cfg.command, shell=True, check=True, timeout=60, env={**os.environ, "RECMILL_NOTICE": json.dumps(note)})
            delivered.append(cfg.command)
        except (subprocess.SubprocessError, OSError) as exc:
            log.error("notice %s not delivered to command %r: %s", note["event"], cfg.command, exc)
    return delivered
