"""Choose this run's challenger and decide whether it replaces the champion.

The challenger is the ranking model with the best validation score on the selection
metric (a buy-again model does not compete). Every trained model is registered as a
model version; the gate (recmill.evaluation.gate) then compares the challenger with
the champion on this run's test users: the champion's recipe (its model and settings)
trained on the same data as the challenger, so neither has seen the test slice.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from recmill import schema as S
from recmill.champion import champion_is_served
from recmill.config import Settings
from recmill.errors import ModelSkipped
from recmill.evaluation.beyond import compare_to_baseline
from recmill.evaluation.gate import Contender, decide
from recmill.fits import architecture, fit_model, settings_hash
from recmill.io import Layout, read_json, run_info, write_json
from recmill.models import model_class
from recmill.registry import CHALLENGER, CHAMPION, Registry, Version
from recmill.scoring import BUSINESS_METRICS, PREDICTION_METRICS, score_ranking, was_scored

log = logging.getLogger("recmill")


def choose(scores: dict[str, float]) -> str:
    """Highest score wins; a tie goes to the model listed first."""
    return max(scores, key=lambda m: (scores[m], -list(scores).index(m)))


def contender(version: Version, per_user: dict, scored: dict, settings: Settings) -> Contender:
    """The gate's view of a model: per-user values, coverage, diversity and fairness gaps on test."""
    k = settings.evaluate.selection_k
    overall, slices = scored["overall"], scored["slices"]
    gaps = {
        name.removeprefix("fairness="): values[f"equal_opportunity_gap@{k}"]
        for name, values in slices.items() if name.startswith("fairness=") and f"equal_opportunity_gap@{k}" in values
    }
    return Contender(version.label, per_user, overall.get(f"coverage@{k}"), overall.get(f"diversity@{k}"), gaps)


def unscored(metrics: dict[str, dict], models: list[str]) -> dict[str, str]:
    """model -> why it has no figures (skipped, or failed to train), for those of models without."""
    return {m: metrics[m].get("skipped") or f"failed to train: {metrics[m]['failed']}" for m in models if not was_scored(metrics[m])}


def valid_scores(metrics: dict[str, dict], ranking: list[str], key: str) -> tuple[dict[str, float], dict[str, str]]:
    """(model -> its valid figure of key, model -> why it was skipped or failed) of the
    ranking models, from their metrics files."""
    scores, skipped = {}, unscored(metrics, ranking)
    for model in (m for m in ranking if m not in skipped):
        if key not in metrics[model]["valid"]:
            raise ValueError(f"{model}'s metrics have no valid {key}; add {key.partition('@')[2]} to evaluate.k")
        scores[model] = metrics[model]["valid"][key]
    return scores, skipped


def test_scores(scored: dict) -> dict:
    """A metrics file's test figures, as contender reads them."""
    return {"overall": scored["test"], "slices": scored["slices"]["test"]}


def metric_kind(key: str) -> str:
    name = key.partition("@")[0]
    return "prediction" if name in PREDICTION_METRICS else "business" if name in BUSINESS_METRICS else "ranking"


def evaluation_document(metrics: dict[str, dict], baseline: str, run_id: str, chosen: str, versions: dict[str, Version], now: datetime) -> dict:
    """This run's evaluation: every model's test figures by kind, its slices and its
    difference from the baseline in percent, the challenger's at the top level."""
    scored = {m: s for m, s in metrics.items() if was_scored(s)}
    baseline_test = scored[baseline]["test"] if baseline in scored else None
    models = {}
    for model, result in scored.items():
        metrics = {"ranking": {}, "prediction": {}, "business": {}, "fairness": {}}
        for key, value in result["test"].items():
            metrics[metric_kind(key)][key] = value
        slices = result["slices"].get("test", {})
        metrics["fairness"] = {name.removeprefix("fairness="): v for name, v in slices.items() if name.startswith("fairness=")}
        models[model] = {
            "model_version": versions[model].label if model in versions else None,
            "metrics": metrics,
            "slices": {name: v for name, v in slices.items() if not name.startswith("fairness=")},
            "comparison_to_baseline": compare_to_baseline(result["test"], baseline_test) if baseline_test and model != baseline else None,
        }
    return {
        "run_id": run_id, S.TIMESTAMP: now.isoformat(timespec="seconds"), "baseline": baseline,
        "model": chosen, **models[chosen], "models": models,
    }


def champion_contender(
    settings: Settings, registry: Registry, champion: Version, versions: dict[str, Version], metrics: dict[str, dict]
) -> Contender:
    """The champion's recipe scored on this run's test users: this run's fit of it when the
    run trained the same model with the same settings, else trained now with its own settings."""
    same = versions.get(champion.model)
    if same is not None and same.settings_hash == champion.settings_hash:
        per_user = read_json(Layout(settings).per_user_file(champion.model))
        return contender(champion, per_user, test_scores(metrics[champion.model]), settings)
    with tempfile.TemporaryDirectory(prefix="recmill-champion-") as work:
        own = Settings.model_validate(registry.settings_of(champion, Path(work))).model_copy(update={"paths": settings.paths})
    log.info("scoring the champion %s: training its settings on this run's data", champion.label)
    fitted, _ = fit_model(own, champion.model, "test")
    scored = score_ranking(settings, fitted, "test")
    return contender(champion, scored["per_user"], scored, settings)


def severe_drift(layout: Layout, run_id: str) -> str | None:
    """The drift summary of this run when the drift stage found severe drift."""
    path = layout.drift / "summary.json"
    if not path.exists():
        return None
    drift = read_json(path)
    return drift["summary"] if drift.get("run_id") == run_id and drift.get("severe") else None


def run(settings: Settings) -> dict:
    layout = Layout(settings)
    key = f"{settings.evaluate.selection_metric}@{settings.evaluate.selection_k}"
    metrics = {m: read_json(layout.metrics_file(m)) for m in settings.train.models}
    buy_again = [m for m in settings.train.models if model_class(m).predicts_reorders]  # judged apart, never published
    scores, skipped = valid_scores(metrics, [m for m in settings.train.models if m not in buy_again], key)
    if not scores:
        raise ModelSkipped(f"every model was skipped, nothing to publish: {skipped}")
    chosen = choose(scores)
    skipped |= unscored(metrics, buy_again)  # nothing to judge it by: not refitted, not published

    info = run_info(settings)
    registry = Registry(settings.tracking)
    champion_is_served(settings, registry)
    champion = registry.alias(CHAMPION)  # before this run registers anything
    versions = {}
    trained = [m for m in settings.train.models if m in scores or (m in buy_again and was_scored(metrics[m]))]
    for model in trained:  # every trained model, the buy-again one by its basket F1
        figure = "basket_f1" if model in buy_again else key
        versions[model] = registry.register(
            model, metrics[model]["mlflow_run_id"], info["run_id"], architecture(settings, model), settings_hash(settings, model),
            info["data_fingerprint"], figure, metrics[model]["valid"].get(figure), metrics[model]["test"].get(figure),
        )
    challenger = versions[chosen]
    registry.set_alias(CHALLENGER, challenger.version)
    challenger_side = contender(challenger, read_json(layout.per_user_file(chosen)), test_scores(metrics[chosen]), settings)
    document = evaluation_document(metrics, settings.evaluate.baseline, info["run_id"], chosen, versions, datetime.now(UTC))
    write_json(layout.evaluation / f"{info['run_id']}.json", document)
    registry.client.log_dict(challenger.mlflow_run, document, f"evaluation/{info['run_id']}.json")
    champion_side = champion_contender(settings, registry, champion, versions, metrics) if champion else None
    failed = {m: metrics[m]["failed"] for m in settings.train.models if "failed" in metrics[m]}
    decision = decide(champion_side, challenger_side, settings.gate, key, settings.seed, severe_drift(layout, info["run_id"]), failed)
    log.info("%s: %s", decision.decision, "; ".join(decision.reasons))
    registry.record_decision(challenger.version, decision.decision, decision.reasons)
    result = {
        "chosen": chosen, "metric": key, "split": "valid", "scores": scores, "skipped": skipped, "failed": failed,
        "challenger_version": challenger.version, "challenger": challenger.label,
        "champion_version": champion.version if champion else None, "champion": champion.label if champion else None,
        "decision": decision.decision, "reasons": decision.reasons, "p_value": decision.p_value,
        "champion_value": decision.champion_value, "challenger_value": decision.challenger_value,
        "registered": {m: v.version for m, v in versions.items()},
    }
    write_json(layout.selection, result)
    return result
