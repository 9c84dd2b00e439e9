"""The weekly deployment's two declarations agree, and a bad schedule is named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from flows.deploy import REFRESH_DEPLOYMENT, schedule
from recmill.config import ScheduleConfig
from recmill.errors import ConfigError
from recmill.settings import load_settings

REPO = Path(__file__).resolve().parents[2]


def test_prefect_yaml_declares_the_deployments_params_yaml_schedules():
    settings = load_settings(REPO / "params.yaml")
    cfg = settings.schedule
    weekly, refresh = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    for deployment, name, cron, limit in ((weekly, cfg.deployment, cfg.cron, cfg.concurrency_limit), (refresh, REFRESH_DEPLOYMENT, settings.refresh.cron, 1)):
        assert deployment["name"] == name
        assert deployment["schedules"] == [{"cron": cron, "timezone": cfg.timezone, "active": True}]
        assert deployment["concurrency_limit"] == limit
        assert deployment["parameters"] == {"config": "params.yaml", "overrides": []}
        path, function = deployment["entrypoint"].split(":")
        assert (REPO / path).is_file() and f"def {function}(" in (REPO / path).read_text()


def test_the_default_schedule_is_mondays_at_three_utc():
    assert (ScheduleConfig().cron, ScheduleConfig().timezone) == ("0 3 * * 1", "UTC")
    assert schedule(ScheduleConfig()).cron == "0 3 * * 1"


@pytest.mark.parametrize(("field", "value", "named"), [("cron", "61 3 * * 1", "cron '61 3 * * 1'"), ("timezone", "Mars/Olympus", "'Mars/Olympus'")])
def test_a_bad_schedule_is_a_config_error_naming_it(field, value, named):
    with pytest.raises(ConfigError, match=re.escape(named)):
        schedule(ScheduleConfig(**{field: value}))


def test_each_stage_task_times_out_after_its_settings_minutes():
    from flows.retrain import STAGE_TASKS, timed

    settings = load_settings(REPO / "params.yaml", ["flow.timeout_minutes.train=90"])
    timeouts = {t.name: timed(t, settings).timeout_seconds for t in STAGE_TASKS}
    assert timeouts["train"] == 90 * 60 and timeouts["publish"] == settings.flow.timeout_minutes["publish"] * 60
    assert set(timeouts) == set(settings.flow.timeout_minutes)


def test_the_compose_stack_has_its_four_services_on_loopback():
    compose = yaml.safe_load((REPO / "infra" / "docker-compose.yml").read_text())
    assert set(compose["services"]) == {"postgres", "prefect", "mlflow", "worker"}
    ports = [p for s in compose["services"].values() for p in s.get("ports", [])]
    assert ports and all(p.startswith("127.0.0.1:") for p in ports)
    assert compose["services"]["worker"]["command"].startswith("recmill schedule")


def test_the_servers_listen_on_loopback_and_take_credentials_from_the_environment():
    compose = yaml.safe_load((REPO / "infra" / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond this machine"
        for key, value in (service.get("environment") or {}).items():
            secret = re.search(r"PASSWORD|SECRET|TOKEN", key) or re.search(r"://[^:/@]+:[^@]+@", str(value))
            if secret:  # a password only ever as a ${VARIABLE} from the environment
                assert re.fullmatch(r".*\$\{\w+(:\?[^}]*)?\}.*", str(value)), f"{name}.{key} holds a credential: {value}"
    serve = (REPO / "infra" / "serve.sh").read_text()
    assert serve.count("--host 127.0.0.1") == 2 and "0.0.0.0" not in serve
