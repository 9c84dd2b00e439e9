"""Model versions in the MLflow Model Registry, and the champion / challenger aliases.

Every ranking model a run trains becomes a version of one registered model, ``recmill``,
whose versions carry tags: the model family (``model``), a semantic version within
that family (``semver``), the pipeline run, the data fingerprint, the selection metric,
and the MLflow runs holding the fits. The semantic version compares a fit with the
family's newest version:

- major: the architecture changed (the model's storage format or the set of its settings);
- minor: the settings of the model or of its inputs changed (new features, new weights);
- patch: the same settings retrained.

The alias ``champion`` names the version that publishes recommendations; ``challenger``
the best model of the latest run; ``previous-champion`` the champion it replaced, which a
rollback restores. Versions beyond the newest ``keep`` of a family, other
than the aliased ones, are tagged ``status=archived``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from recmill.config import TrackingConfig
from recmill.errors import RecmillError
from recmill.tracking import Tracker

REGISTERED_MODEL = "recmill"
CHAMPION, CHALLENGER, PREVIOUS_CHAMPION = "champion", "challenger", "previous-champion"
PUBLISHED = "published"  # a version's pyfunc model, in its training run (recmill.serving)


@dataclass(frozen=True)
class Version:
    version: str  # the registry's number, as MLflow gives it
    model: str
    semver: str
    pipeline_run: str
    mlflow_run: str  # the training run: settings.json and the valid / test fits
    full_run: str | None  # the run holding the fit on all data, once there is one
    architecture: str
    settings_hash: str
    metric: str
    valid_value: float | None
    test_value: float | None
    aliases: tuple[str, ...]
    archived: bool
    created_ms: int

    @property
    def label(self) -> str:
        return f"v{self.version} ({self.model} {self.semver})"


def next_semver(previous: Version | None, architecture: str, settings_hash: str) -> str:
    """The semantic version of a new fit of a family whose newest version is ``previous``."""
    if previous is None:
        return "1.0.0"
    major, minor, patch = (int(p) for p in previous.semver.split("."))
    if architecture != previous.architecture:
        return f"{major + 1}.0.0"
    if settings_hash != previous.settings_hash:
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def _float(text: str | None) -> float | None:
    return None if text in (None, "", "None") else float(text)


class Registry:
    def __init__(self, cfg: TrackingConfig):
        self.client = Tracker(cfg).client
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(REGISTERED_MODEL)
        except MlflowException:
            self.client.create_registered_model(
                REGISTERED_MODEL, description="Recommendation models; the 'champion' alias publishes."
            )

    def _aliases(self) -> dict[str, str]:
        """alias -> version; search results carry no aliases, the registered model does."""
        return {a: str(v) for a, v in (self.client.get_registered_model(REGISTERED_MODEL).aliases or {}).items()}

    def _version(self, mv, aliases: dict[str, str] | None = None) -> Version:
        aliases = self._aliases() if aliases is None else aliases
        t = mv.tags
        return Version(
            version=str(mv.version), model=t["model"], semver=t["semver"], pipeline_run=t["pipeline_run"],
            mlflow_run=mv.run_id, full_run=t.get("full_run") or None, architecture=t["architecture"],
            settings_hash=t["settings_hash"], metric=t["metric"], valid_value=_float(t.get("valid_value")),
            test_value=_float(t.get("test_value")), aliases=tuple(sorted(a for a, v in aliases.items() if v == str(mv.version))),
            archived=t.get("status") == "archived", created_ms=int(mv.creation_timestamp or 0),
        )

    def versions(self, model: str | None = None) -> list[Version]:
        """Every version, newest first (of one family when given)."""
        found = self.client.search_model_versions(f"name='{REGISTERED_MODEL}'", max_results=100_000)
        aliases = self._aliases()
        out = [self._version(mv, aliases) for mv in found if "model" in mv.tags]
        out.sort(key=lambda v: int(v.version), reverse=True)
        return [v for v in out if model is None or v.model == model]

    def get(self, version: str) -> Version:
        from mlflow.exceptions import MlflowException

        try:
            return self._version(self.client.get_model_version(REGISTERED_MODEL, str(version)))
        except MlflowException:
            known = ", ".join(v.version for v in self.versions()[:10]) or "none"
            raise RecmillError(f"no model version {version} in the registry (newest: {known})") from None

    def alias(self, alias: str) -> Version | None:
        from mlflow.exceptions import MlflowException

        try:
            return self._version(self.client.get_model_version_by_alias(REGISTERED_MODEL, alias))
        except MlflowException:
            return None

    def register(
        self, model: str, mlflow_run: str, pipeline_run: str, architecture: str, settings_hash: str,
        data_fingerprint: str, metric: str, valid_value: float | None, test_value: float | None,
    ) -> Version:
        family = self.versions(model)
        semver = next_semver(family[0] if family else None, architecture, settings_hash)
        tags = {
            "model": model, "semver": semver, "pipeline_run": pipeline_run, "architecture": architecture,
            "settings_hash": settings_hash, "data_fingerprint": data_fingerprint, "metric": metric,
            "valid_value": str(valid_value), "test_value": str(test_value),
        }
        # the entry points at the fit that publishes, which set_servable puts there once there is one
        mv = self.client.create_model_version(REGISTERED_MODEL, f"runs:/{mlflow_run}/{PUBLISHED}", run_id=mlflow_run, tags=tags)
        return self._version(mv)

    def is_servable(self, version: Version) -> bool:
        return self.client.get_model_version(REGISTERED_MODEL, version.version).tags.get("servable") == "true"

    def set_servable(self, version: Version, fit_dir: Path) -> None:
        """Put the version's fit on all the data (saved in fit_dir) where its registry entry
        points, as an MLflow pyfunc model; once per version."""
        import tempfile

        from recmill.serving import save_pyfunc

        if self.is_servable(version):
            return
        with tempfile.TemporaryDirectory(prefix="recmill-pyfunc-") as work:
            self.client.log_artifacts(version.mlflow_run, str(save_pyfunc(fit_dir, Path(work) / PUBLISHED)), PUBLISHED)
        self.client.set_model_version_tag(REGISTERED_MODEL, version.version, "servable", "true")

    def set_full_run(self, version: str, mlflow_run: str) -> None:
        self.client.set_model_version_tag(REGISTERED_MODEL, version, "full_run", mlflow_run)

    def record_decision(self, version: str, decision: str, reasons: list[str]) -> None:
        self.client.set_model_version_tag(REGISTERED_MODEL, version, "decision", decision)
        self.client.set_model_version_tag(REGISTERED_MODEL, version, "decision_reasons", "; ".join(reasons)[:5000])

    def set_alias(self, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(REGISTERED_MODEL, alias, version)

    def make_champion(self, version: str) -> None:
        """Point the champion alias at version, remembering the one it replaces (for rollback).
        Again with the same version it changes nothing: a retry may call it twice."""
        current = self.alias(CHAMPION)
        if current is not None and current.version != str(version):
            self.set_alias(PREVIOUS_CHAMPION, current.version)
        self.set_alias(CHAMPION, str(version))

    def archive_old(self, keep: int) -> list[str]:
        """Tag all but each family's newest ``keep`` versions archived (aliased ones stay); returns them."""
        archived = []
        by_family: dict[str, list[Version]] = {}
        for v in self.versions():
            by_family.setdefault(v.model, []).append(v)
        for family in by_family.values():
            for v in family[keep:]:
                if not v.archived and not v.aliases:
                    self.client.set_model_version_tag(REGISTERED_MODEL, v.version, "status", "archived")
                    archived.append(v.version)
        return archived

    def download(self, run_id: str, artifact: str, into: Path) -> Path:
        """An artifact folder of a run, copied under ``into``."""
        into.mkdir(parents=True, exist_ok=True)
        return Path(self.client.download_artifacts(run_id, artifact, str(into)))

    def settings_of(self, version: Version, into: Path) -> dict:
        """The full settings the version was trained with (settings.json of its training run)."""
        return json.loads(self.download(version.mlflow_run, "settings.json", into).read_text())
