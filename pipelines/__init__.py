"""The DAG's stages. Each module exposes run(settings, ...) and is called by both drivers:
the Prefect flow (flows/retrain.py) and DVC (dvc.yaml, through ``python -m pipelines``)."""

STAGES = ("ingest", "validate", "split", "drift", "train", "evaluate", "select", "refit", "publish")
PER_MODEL_STAGES = ("train", "evaluate")
