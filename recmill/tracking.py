"""MLflow runs in a local sqlite-backed store (the URI is configurable)."""

from __future__ import annotations

import math
from pathlib import Path

from recmill.config import TrackingConfig


def _flatten(prefix: str, obj) -> dict[str, str]:
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            out.update(_flatten(f"{prefix}.{key}" if prefix else str(key), value))
        return out
    return {prefix: str(obj)}


class Tracker:
    """One experiment; each model fit is a run, tagged with the pipeline's run id."""

    def __init__(self, cfg: TrackingConfig):
        import mlflow
        from mlflow.tracking import MlflowClient

        uri = cfg.uri
        if uri.startswith("sqlite:///"):
            # absolute, because MLflow caches one store per URI string for the whole process
            db = Path(uri.removeprefix("sqlite:///")).resolve()
            db.parent.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{db}"
        mlflow.set_tracking_uri(uri)
        self.client = MlflowClient(tracking_uri=uri)
        experiment = self.client.get_experiment_by_name(cfg.experiment)
        if experiment is None and uri.startswith(("http://", "https://")):  # a tracking server keeps the artifacts
            self.experiment_id = self.client.create_experiment(cfg.experiment)
        elif experiment is None:
            location = Path(cfg.artifacts).resolve()
            location.mkdir(parents=True, exist_ok=True)
            self.experiment_id = self.client.create_experiment(cfg.experiment, artifact_location=location.as_uri())
        else:
            self.experiment_id = experiment.experiment_id

    def start(self, name: str, pipeline_run: str, params: dict, tags: dict | None = None) -> str:
        run = self.client.create_run(
            self.experiment_id, run_name=name, tags={"recmill.run_id": pipeline_run, **(tags or {})}
        )
        from mlflow.entities import Param

        flat = _flatten("", params)
        self.client.log_batch(run.info.run_id, params=[Param(k, v[:6000]) for k, v in sorted(flat.items())])
        return run.info.run_id

    def log_metrics(self, run_id: str, metrics: dict[str, float]) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, 0) for k, v in sorted(metrics.items()) if math.isfinite(v)]
        for i in range(0, len(batch), 900):
            self.client.log_batch(run_id, metrics=batch[i : i + 900])

    def log_artifacts(self, run_id: str, directory: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(run_id, str(directory), artifact_path)

    def finish(self, run_id: str, failed: bool = False) -> None:
        self.client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")

    def runs(self, pipeline_run: str):
        return self.client.search_runs([self.experiment_id], filter_string=f"tags.`recmill.run_id` = '{pipeline_run}'")
