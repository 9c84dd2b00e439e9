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


PIPELINE_TAG = "recmill.pipeline_run"  # on the parent run of a pipeline run (its children carry recmill.run_id)


class Tracker:
    """One experiment; each pipeline run is a parent run, named by the pipeline's run id,
    and each model fit a run nested in it, tagged with that id."""

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

    def open_pipeline(self, pipeline_run: str, params_json: str) -> str:
        """The parent run of a pipeline run: created, or (a resumed run) running again."""
        found = self.pipeline_parent(pipeline_run)
        if found is not None:
            self.client.update_run(found, status="RUNNING")
            return found
        run = self.client.create_run(self.experiment_id, run_name=pipeline_run, tags={PIPELINE_TAG: pipeline_run})
        self.client.log_text(run.info.run_id, params_json, "settings.json")
        return run.info.run_id

    def pipeline_parent(self, pipeline_run: str) -> str | None:
        found = self.client.search_runs([self.experiment_id], filter_string=f"tags.`{PIPELINE_TAG}` = '{pipeline_run}'", max_results=1)
        return found[0].info.run_id if found else None

    def start(self, name: str, pipeline_run: str, params: dict, tags: dict | None = None) -> str:
        """A run nested in the pipeline run's parent (when it has one)."""
        parent = self.pipeline_parent(pipeline_run)
        nested = {"mlflow.parentRunId": parent} if parent else {}
        run = self.client.create_run(
            self.experiment_id, run_name=name, tags={"recmill.run_id": pipeline_run, **nested, **(tags or {})}
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
