"""The DAG's stages. Each module exposes run(settings, ...) and is called by both drivers:
the Prefect flow (flows/retrain.py) and DVC (dvc.yaml, through ``python -m pipelines``)."""

from recmill.config import STAGES  # noqa: F401  (settings name the stages too: flow.timeout_minutes)

PER_MODEL_STAGES = ("train", "evaluate")
