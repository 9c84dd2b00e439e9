"""Score one model's two fits on the held-out slices: valid (for choosing) and test (reported).

Ranking metrics for every model; RMSE and MAE for models that predict ratings, where the
held-out slice has ratings; what a model measured while training (two_stage's stage-1
recall); and, when the segments model was trained, the ranking metrics of each segment.
A buy-again model is scored on each user's next order instead: AUC, log loss and
next-basket F1, beside the F1 of the two baselines.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from pipelines.common import fit_events
from recmill.config import Settings
from recmill.data.split import items_by_user, relevant_items
from recmill.evaluation.basket import buy_again_metrics
from recmill.evaluation.holdout import ranked_lists
from recmill.evaluation.metrics import RATING_METRICS, evaluate, per_user
from recmill.io import Layout, read_frame, read_json, write_json
from recmill.models import REGISTRY
from recmill.tracking import Tracker

FITS = ("valid", "test")


def metric_key(metric: str, k: int | None) -> str:
    return metric if k is None else f"{metric}@{k}"


def segment_labels(settings: Settings, fit: str, users: list[str]) -> dict[str, str] | None:
    """user -> segment label from the segments model of the same fit, when it was trained."""
    path = Layout(settings).model_dir("segments", fit)
    if "segments" not in settings.train.models or not (path / "config.json").exists():
        return None
    segments = REGISTRY["segments"].load(path)
    labels = segments.tables()["segment_profiles"].set_index("segment")["label"]
    return {u: labels.get(s, "unknown") for u, s in zip(users, segments.segment_of(users)) if s >= 0}


def score_buy_again(settings: Settings, fitted, fit: str) -> tuple[dict, int]:
    """Buy-again metrics of one fit on the next orders after its training data."""
    positive = settings.interactions.positive_event_types
    history = fit_events(settings, fit)
    held_out = read_frame(Layout(settings).splits / f"{fit}.parquet")
    scores = buy_again_metrics(
        fitted.reorder_probabilities(),
        history[history["event_type"].isin(positive)],
        held_out[held_out["event_type"].isin(positive)],
    )
    scores.update(fitted.training_metrics())
    return scores, int(scores.pop("basket_users"))


def holdout_truth(settings: Settings, fit: str) -> dict[str, set]:
    """user -> the held-out items after this fit's training data that they did not have."""
    held_out = read_frame(Layout(settings).splits / f"{fit}.parquet")
    positive = settings.interactions.positive_event_types
    had = items_by_user(fit_events(settings, fit), positive) if settings.publish.exclude_seen else None
    return relevant_items(held_out, positive, had)


def score_ranking(settings: Settings, fitted, fit: str) -> dict:
    """A ranking model on the slice after a fit's training data: 'overall' metrics, 'segments'
    (label -> metrics), 'per_user' (user -> the selection metric) and 'users'."""
    exclude = settings.publish.exclude_seen
    truth = holdout_truth(settings, fit)
    ev = settings.evaluate
    ranked = ranked_lists(fitted, truth, max(ev.k), exclude)  # once: overall and per segment
    rows = evaluate(truth, ranked, ev.metrics, ev.k, len(fitted.item_ids_))
    overall = {metric_key(r["metric"], r["k"]): r["value"] for r in rows}
    overall.update(fitted.training_metrics())

    held_out = read_frame(Layout(settings).splits / f"{fit}.parquet")
    ratings = held_out[held_out["event_type"] == "rating"]
    if fitted.predicts_ratings and len(ratings):
        predicted = fitted.predict(ratings["user_id"], ratings["item_id"])
        overall.update({name: fn(ratings["value"], predicted) for name, fn in RATING_METRICS.items()})

    by_segment = {}
    labels = segment_labels(settings, fit, list(truth))
    if labels:
        members = defaultdict(list)
        for user, label in labels.items():
            members[label].append(user)
        per_user_metrics = [m for m in ev.metrics if m != "coverage"]
        for label, users in sorted(members.items()):
            sub = {u: truth[u] for u in users}
            by_segment[label] = {
                metric_key(m, k): float(np.mean(list(per_user(m, sub, ranked, k).values())))
                for m in per_user_metrics
                for k in ev.k
            }
    selection = per_user(ev.selection_metric, truth, ranked, ev.selection_k)
    return {"overall": overall, "segments": by_segment, "per_user": selection, "users": len(truth)}


def score_fit(settings: Settings, model: str, fit: str) -> dict:
    """score_ranking of one saved fit, or the buy-again metrics of a buy-again model."""
    fitted = REGISTRY[model].load(Layout(settings).model_dir(model, fit))
    if fitted.predicts_reorders:
        overall, users = score_buy_again(settings, fitted, fit)
        return {"overall": overall, "segments": {}, "per_user": {}, "users": users}
    return score_ranking(settings, fitted, fit)


def run(settings: Settings, model: str) -> dict:
    layout = Layout(settings)
    tracking = read_json(layout.tracking_file(model))
    result = {"model": model, "mlflow_run_id": tracking["mlflow_run_id"]}
    if "skipped" in tracking:
        result["skipped"] = tracking["skipped"]
        write_json(layout.metrics_file(model), result)
        return result
    result["users_scored"], result["segments"] = {}, {}
    for fit in FITS:  # nested split -> "metric@k" -> value, the shape `dvc metrics` reads
        scored = score_fit(settings, model, fit)
        result[fit], result["users_scored"][fit] = scored["overall"], scored["users"]
        if scored["segments"]:
            result["segments"][fit] = scored["segments"]
    # the selection metric of each test user: the promotion gate's paired test reads it
    write_json(layout.per_user_file(model), scored["per_user"])
    Tracker(settings.tracking).log_metrics(
        tracking["mlflow_run_id"],
        {f"{fit}_{name.replace('@', '_at_')}": value for fit in FITS for name, value in result[fit].items()},
    )
    write_json(layout.metrics_file(model), result)
    return result
