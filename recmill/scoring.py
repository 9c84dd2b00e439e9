"""Scoring a run's fits on its held-out slices: valid (for choosing) and test (reported).

For a ranking model, over the users with a held-out item they did not have (a seeded
sample of evaluate.max_users of them when there are more, the same for every model):

- ranking: precision, recall, NDCG, MAP, hit rate and MRR at each evaluate.k, and what the
  model measured while training (two_stage's stage-1 recall); RMSE and MAE for models
  that predict ratings, where the slice has ratings;
- business: catalogue coverage, diversity, novelty, serendipity (against the baseline
  model's lists) and personalisation at each k;
- fairness, for each of evaluate.fairness_attributes: the spread across its groups of
  long-tail exposure and of recall (the equal-opportunity gap) at the selection k;
- slices: the ranking metrics of each user segment, of new / light / medium / heavy
  users, of each group of the fairness attributes, and recall by item popularity decile.

A buy-again model is scored on each user's next order instead (at most evaluate.max_users
users, drawn the same way): AUC, log loss and next-basket F1, beside the F1 of the two
baselines. Undefined figures (a gap with one group) are left out rather than written as NaN.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recmill import schema as S
from recmill.config import Settings
from recmill.evaluation import beyond
from recmill.evaluation.basket import buy_again_metrics
from recmill.evaluation.holdout import ranked_lists, sample_users
from recmill.evaluation.metrics import RATING_METRICS, evaluate, per_user, per_user_scores
from recmill.fits import FIT_SPLITS, files_key, fit_events
from recmill.io import Layout, read_frame
from recmill.models import model_class

FITS = ("valid", "test")


def was_scored(document: dict) -> bool:
    """Whether a model's training record or metrics file holds a fit: not skipped, not failed."""
    return "skipped" not in document and "failed" not in document

PREDICTION_METRICS = ("rmse", "mae", "auc", "log_loss", "basket_f1", "basket_f1_repeat_last_basket", "basket_f1_top_frequent")
BUSINESS_METRICS = ("coverage", "diversity", "novelty", "serendipity", "personalisation")


def metric_key(metric: str, k: int | None) -> str:
    return metric if k is None else f"{metric}@{k}"


def finite(values: dict) -> dict:
    return {key: float(v) for key, v in values.items() if v is not None and math.isfinite(v)}


def segment_labels(settings: Settings, fit: str, users: list[str]) -> dict[str, str] | None:
    """user -> segment label from the segments model of the same fit, when it was trained."""
    path = Layout(settings).model_dir("segments", fit)
    if "segments" not in settings.train.models or not (path / "config.json").exists():
        return None
    segments = model_class("segments").load(path)
    labels = segments.tables()["segment_profiles"].set_index("segment")["label"]
    return {u: labels.get(s, "unknown") for u, s in zip(users, segments.segment_of(users)) if s >= 0}


def user_groups(settings: Settings, fit: str, users: list[str]) -> dict[str, dict[str, str]]:
    """attribute -> user -> group, for each fairness attribute the data has."""
    table = read_frame(Layout(settings).canonical / "users.parquet").astype({S.USER_ID: str}).set_index(S.USER_ID)
    groups = {}
    for attribute in settings.evaluate.fairness_attributes:
        if attribute == "segment":
            labels = segment_labels(settings, fit, users)
        elif attribute in table:
            column = table[attribute].dropna().astype(str)
            labels = {u: column[u] for u in users if u in column.index}
        else:
            labels = None
        if labels:
            groups[attribute] = labels
    return groups


_BASELINES: dict[tuple, dict[str, list[str]]] = {}


def baseline_lists(settings: Settings, fit: str, users, k: int) -> dict[str, list[str]] | None:
    """The baseline model's lists of the same fit, when it was trained; reused while its saved
    fit and the users are the same (every model's evaluation compares with them)."""
    name = settings.evaluate.baseline
    path = Layout(settings).model_dir(name, fit)
    if name not in settings.train.models or not (path / "config.json").exists():
        return None
    users = list(users)
    key = (fit, k, settings.publish.exclude_seen, hash(tuple(users)), *files_key(sorted(path.iterdir())))
    return remembered(_BASELINES, key, lambda: ranked_lists(model_class(name).load(path), users, k, settings.publish.exclude_seen))


def remembered(cache: dict, key: tuple, make):
    """cache[key], made by make() when missing; the cache keeps the last two (a run's two fits)."""
    if key not in cache:
        while len(cache) >= 2:
            cache.pop(next(iter(cache)))
        cache[key] = make()
    return cache[key]


@dataclass
class Holdout:
    """What scoring any ranking model on one fit's held-out slice needs besides its lists:
    the same for every model, so one process builds it once per fit."""

    truth: dict[str, set]        # sampled users -> held-out items they did not have
    ratings: pd.DataFrame        # held-out rating events
    popularity: Counter          # item -> users who had it before the slice
    n_users: int                 # users who had an item before the slice
    item_ids: np.ndarray         # the catalogue's attribute vectors (diversity)
    item_vectors: object
    activity: dict[str, int]     # user -> training events
    segments: dict[str, str] | None
    groups: dict[str, dict[str, str]]
    long_tail: set


_HOLDOUTS: dict[tuple, Holdout] = {}


def holdout(settings: Settings, fit: str) -> Holdout:
    """The fit's Holdout, reused while its files and settings are the same (the last two fits)."""
    layout = Layout(settings)
    files = [layout.splits / f"{s}.parquet" for s in (*FIT_SPLITS[fit], fit)] + [layout.canonical / f"{t}.parquet" for t in ("items", "users")]
    segments = layout.model_dir("segments", fit) / "state.npz"
    files += [segments] if segments.exists() else []
    key = (fit, settings.interactions.model_dump_json(), settings.evaluate.model_dump_json(), settings.publish.exclude_seen,
           settings.seed, *files_key(files))
    return remembered(_HOLDOUTS, key, lambda: build_holdout(settings, fit))


def build_holdout(settings: Settings, fit: str) -> Holdout:
    """The fit's Holdout, its pair work done by DuckDB over the split files: a fifth of the
    time of pandas' merges at 40M events, so a fresh process (a pool's worker) builds it too."""
    from recmill.sql import connect, literal

    ev, layout = settings.evaluate, Layout(settings)
    files = ", ".join(literal(layout.splits / f"{s}.parquet") for s in FIT_SPLITS[fit])
    held = layout.splits / f"{fit}.parquet"
    positive = ", ".join(literal(t) for t in settings.interactions.positive_event_types)

    def pairs(source: str) -> str:  # the distinct (user, item) pairs with a positive event in source
        return f"SELECT DISTINCT user_id, item_id FROM {source} WHERE event_type IN ({positive}) AND user_id IS NOT NULL AND item_id IS NOT NULL"

    con = connect(settings.duckdb.memory_limit, settings.duckdb.threads, layout.spill)
    try:
        con.execute(f"CREATE TEMP VIEW history AS SELECT user_id, item_id, event_type FROM read_parquet([{files}])")
        con.execute(f"CREATE TEMP TABLE had AS {pairs('history')}")  # before the slice
        # the held-out items after the training data, less those the user had already
        unseen = " EXCEPT SELECT user_id, item_id FROM had" if settings.publish.exclude_seen else ""
        con.execute(f"CREATE TEMP TABLE relevant AS {pairs(f'read_parquet({literal(held)})')}{unseen}")
        users = sample_users((u for (u,) in con.sql("SELECT DISTINCT user_id FROM relevant").fetchall()), ev.max_users, settings.seed)
        con.register("sampled", pd.DataFrame({S.USER_ID: users}))
        by_user = con.sql("SELECT user_id, list(item_id) FROM relevant WHERE user_id IN (SELECT user_id FROM sampled) GROUP BY user_id").fetchall()
        popularity = Counter(dict(con.sql("SELECT item_id, count(*) FROM had GROUP BY item_id").fetchall()))  # users who had each item
        (n_users,), = con.sql("SELECT count(DISTINCT user_id) FROM had").fetchall()
        activity = dict(con.sql("SELECT user_id, count(*) FROM history WHERE user_id IS NOT NULL GROUP BY user_id").fetchall())
    finally:
        con.close()
    truth = {user: set(items) for user, items in sorted(by_user)}  # sampled users, sorted
    ids, vectors = beyond.item_vectors(read_frame(layout.canonical / "items.parquet").astype({S.ITEM_ID: str}))
    return Holdout(
        truth=truth, ratings=read_frame(held, filters=[(S.EVENT_TYPE, "==", "rating")]), popularity=popularity, n_users=max(n_users, 1),
        item_ids=ids, item_vectors=vectors, activity=activity,
        segments=segment_labels(settings, fit, list(truth)), groups=user_groups(settings, fit, list(truth)),
        long_tail=beyond.long_tail_items(popularity, ev.long_tail_share) if popularity else set(),
    )


def score_ranking(settings: Settings, fitted, fit: str) -> dict:
    """A ranking model on the slice after a fit's training data: 'overall' metrics, 'slices'
    (slice name -> metrics), 'per_user' (user -> the selection metric) and 'users'."""
    ev = settings.evaluate
    h = holdout(settings, fit)
    truth = h.truth
    top = max(ev.k)
    ranked = ranked_lists(fitted, truth, top, settings.publish.exclude_seen)  # once, for every figure below
    rows = evaluate(truth, ranked, ev.metrics, ev.k, len(fitted.item_ids_))
    overall = {metric_key(r["metric"], r["k"]): r["value"] for r in rows}
    overall.update(fitted.training_metrics())

    ratings = h.ratings
    if fitted.predicts_ratings and len(ratings):
        predicted = fitted.predict(ratings[S.USER_ID], ratings[S.ITEM_ID])
        overall.update({name: fn(ratings["value"], predicted) for name, fn in RATING_METRICS.items()})

    baseline = ranked if fitted.name == ev.baseline else baseline_lists(settings, fit, truth, top)
    for k in ev.k:
        overall[f"diversity@{k}"] = beyond.diversity(ranked, k, h.item_ids, h.item_vectors)
        overall[f"novelty@{k}"] = beyond.novelty(ranked, k, h.popularity, h.n_users)
        overall[f"personalisation@{k}"] = beyond.personalisation(ranked, k, ev.personalisation_sample, settings.seed)
        if baseline is not None:
            overall[f"serendipity@{k}"] = beyond.serendipity(ranked, truth, k, baseline)

    slices: dict[str, dict] = {}
    # each user's score of every ranking metric at every k, found once for all the slices
    user_scores = {metric_key(m, k): scores for (m, k), scores in per_user_scores(truth, ranked, ev.metrics, ev.k).items()}

    def add_groups(name: str, labels: dict[str, str]) -> None:
        members = defaultdict(list)
        for user, label in labels.items():
            if user in truth:
                members[label].append(user)
        for key, scores in user_scores.items():
            for label, users in members.items():
                slices.setdefault(f"{name}={label}", {})[key] = float(np.mean([scores[u] for u in users]))
        for label, users in members.items():
            slices[f"{name}={label}"]["users"] = float(len(users))

    if h.segments:
        add_groups("segment", h.segments)
    add_groups("activity", beyond.activity_slices(h.activity, truth, ev.light_user_events, ev.heavy_user_events))
    k = ev.selection_k
    for attribute, groups in h.groups.items():
        if attribute != "segment":
            add_groups(attribute, groups)
        exposure, _ = beyond.exposure_gap(ranked, k, groups, h.long_tail)
        opportunity, _ = beyond.equal_opportunity_gap(ranked, truth, k, groups)
        slices[f"fairness={attribute}"] = {f"exposure_gap@{k}": exposure, f"equal_opportunity_gap@{k}": opportunity}
    for decile, value in beyond.popularity_decile_recall(ranked, truth, k, h.popularity).items():
        slices[f"popularity_decile={decile}"] = {f"recall@{k}": value}
    selection = user_scores.get(metric_key(ev.selection_metric, ev.selection_k))
    if selection is None:  # selection_k outside evaluate.k
        selection = per_user(ev.selection_metric, truth, ranked, ev.selection_k)
    return {
        "overall": finite(overall),
        "slices": {name: finite(values) for name, values in slices.items()},
        "per_user": selection,
        "users": len(truth),
    }


def score_buy_again(settings: Settings, fitted, fit: str) -> tuple[dict, int]:
    """Buy-again metrics of one fit on the next orders after its training data."""
    layout, positive = Layout(settings), list(settings.interactions.positive_event_types)
    held_out = read_frame(layout.splits / f"{fit}.parquet", filters=[(S.EVENT_TYPE, "in", positive)])
    users = sample_users(held_out[S.USER_ID].unique(), settings.evaluate.max_users, settings.seed)
    # only the sampled users' events, in file order, read apart from the other 40M
    history = fit_events(settings, fit, read=lambda path: read_frame(path, filters=[(S.EVENT_TYPE, "in", positive), (S.USER_ID, "in", users)]))
    scores = buy_again_metrics(fitted.reorder_probabilities(users), history, held_out[held_out[S.USER_ID].isin(users)])
    scores.update(fitted.training_metrics())
    return finite(scores), int(scores.pop("basket_users"))


def score_fit(settings: Settings, model: str, fit: str) -> dict:
    """score_ranking of one saved fit, or the buy-again metrics of a buy-again model."""
    fitted = model_class(model).load(Layout(settings).model_dir(model, fit))
    if fitted.predicts_reorders:
        overall, users = score_buy_again(settings, fitted, fit)
        return {"overall": overall, "slices": {}, "per_user": {}, "users": users}
    return score_ranking(settings, fitted, fit)
