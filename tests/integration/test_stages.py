"""Both drivers run the same stages: dvc.yaml and the Prefect flow name the same set."""

from pathlib import Path

import yaml

import pipelines
from flows.retrain import STAGE_TASKS

REPO = Path(__file__).resolve().parents[2]


def test_dvc_and_flow_name_the_same_stages():
    dvc_stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert list(dvc_stages) == [t.name for t in STAGE_TASKS] == list(pipelines.STAGES)


def test_every_dvc_stage_calls_its_pipeline_module():
    for name, stage in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].items():
        cmd = stage.get("do", stage)["cmd"]
        assert cmd.startswith(f"python -m pipelines {name}"), cmd
        assert (REPO / "pipelines" / f"{name}.py").exists()
