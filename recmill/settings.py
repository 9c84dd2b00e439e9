"""The settings a run uses: params.yaml read and typed by recmill.config, then every model
and metric it names checked against the catalogues. config.py knows the settings' shape
only: the models and metrics import their settings from it, so it cannot import them."""

from __future__ import annotations

from pathlib import Path

from recmill.config import DEFAULT_PARAMS, Settings, read_settings, settings_origin
from recmill.errors import ConfigError
from recmill.evaluation.metrics import METRICS
from recmill.models import MODEL_NAMES


def unknown_names(settings: Settings) -> list[str]:
    """One problem per setting that names a model or metric recmill does not have."""
    named = (
        ("train.models", "model", settings.train.models, MODEL_NAMES),
        ("models.two_stage.generators", "generator", settings.models.two_stage.generators, MODEL_NAMES),
        ("evaluate.metrics", "metric", settings.evaluate.metrics, METRICS),
        ("evaluate.selection_metric", "metric", [settings.evaluate.selection_metric], METRICS),
    )
    problems = []
    for key, kind, names, known in named:
        unknown = [name for name in names if name not in known]
        if unknown:
            problems.append(f"bad value for '{key}': unknown {kind}(s) {unknown}; known: {sorted(known)}")
    return problems


def load_settings(path: Path | str | None = DEFAULT_PARAMS, overrides: list[str] = ()) -> Settings:
    """The checked settings of params.yaml (missing file: all defaults) with dotted
    ``key=value`` overrides; a ConfigError names every key at fault."""
    settings = read_settings(path, overrides)
    problems = unknown_names(settings)
    if problems:
        raise ConfigError(f"{settings_origin(path, overrides)}: " + "; ".join(problems))
    return settings
