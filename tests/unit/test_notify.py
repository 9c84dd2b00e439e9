"""Notices reach a webhook on loopback and a shell command; one that cannot be delivered is logged, not raised."""

from __future__ import annotations

import json

from recmill.config import NotifyConfig
from recmill.notify import FAILED, held_by_drift, notice, send


def test_a_notice_goes_to_the_webhook_and_the_command(receiver, tmp_path):
    url, received = receiver
    note = notice(FAILED, "validation failed: events.csv line 5", "brave-otter", "1234", "http://127.0.0.1:4200/runs/flow-run/1234")
    command = f"printf '%s' \"$RECMILL_NOTICE\" > {tmp_path / 'notice.json'}"
    assert send(NotifyConfig(webhook=url, command=command), note) == [url, command]
    assert received == [note]
    assert json.loads((tmp_path / "notice.json").read_text()) == note


def test_an_undeliverable_notice_is_logged_and_the_run_goes_on(caplog):
    cfg = NotifyConfig(webhook="http://127.0.0.1:9/nobody-listens", command="exit 3")
    assert send(cfg, notice(FAILED, "boom")) == []
    assert "not delivered to http://127.0.0.1:9/nobody-listens" in caplog.text and "not delivered to command 'exit 3'" in caplog.text


def test_nothing_configured_sends_nothing():
    assert send(NotifyConfig(), notice(FAILED, "boom")) == []


def test_a_promotion_held_by_severe_drift_is_found_among_the_reasons():
    reason = "severe drift blocks automatic promotion: 5 of 6 columns drifted"
    assert held_by_drift({"reasons": ["als 1.0.1 beats als 1.0.0", reason]}) == reason
    assert held_by_drift({"reasons": ["the difference is not significant: p = 0.3 >= 0.05 (bootstrap)"]}) is None
