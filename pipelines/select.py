"""Choose the model to publish: the best validation score on the selection metric, among
the models that rank items (a buy-again model does not compete)."""

from __future__ import annotations

from recmill.config import Settings
from recmill.errors import ModelSkipped
from recmill.io import Layout, read_json, write_json
from recmill.models import REGISTRY


def choose(scores: dict[str, float]) -> str:
    """Highest score wins; a tie goes to the model listed first."""
    return max(scores, key=lambda m: (scores[m], -list(scores).index(m)))


def run(settings: Settings) -> dict:
    layout = Layout(settings)
    metric, k = settings.evaluate.selection_metric, settings.evaluate.selection_k
    scores, skipped = {}, {}
    for model in settings.train.models:
        if REGISTRY[model].predicts_reorders:
            continue
        scored = read_json(layout.metrics_file(model))
        if "skipped" in scored:
            skipped[model] = scored["skipped"]
            continue
        valid = scored["valid"]
        if f"{metric}@{k}" not in valid:
            raise ValueError(f"{layout.metrics_file(model)} has no valid {metric}@{k}; add {k} to evaluate.k")
        scores[model] = valid[f"{metric}@{k}"]
    if not scores:
        raise ModelSkipped(f"every model was skipped, nothing to publish: {skipped}")
    chosen = choose(scores)
    result = {"chosen": chosen, "metric": f"{metric}@{k}", "split": "valid", "scores": scores, "skipped": skipped}
    write_json(layout.selection, result)
    return result
