"""Matrix factorisation on MovieLens 100K: rating error against a bias-only baseline, and the
speed and quality of folding in users without retraining.

Protocol: per user, ratings sorted by (timestamp, item id), the last 20% held out. The
model fits the rest. Fold-in: 500 trained users each get their first 5 held-out ratings
as new events, and 500 new users arrive with the first 10 training ratings of 500 trained
users (renamed); one fold_in call takes all 1,000. The folded-in users are then scored on
the held-out ratings they did not get: the rest of their own, or their original's.
Without ML-100K the synthetic small shop stands in (implicit feedback: no rating errors).

    .venv/bin/python benchmarks/mf_fold_in.py [--data ../shared/datasets/ml-100k]

Writes reports/benchmarks/mf_fold_in.json and .md, and prints the tables.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import pandas as pd
from report import write_report

from recmill import schema as S
from recmill.config import Settings, SplitConfig
from recmill.data.interactions import InteractionData
from recmill.data.sources import load_source
from recmill.data.split import relevant_items, temporal_split
from recmill.evaluation.holdout import score_model
from recmill.models.mf import MFRecommender, fold_in
from recmill.runtime import offline_defaults

REPO = Path(__file__).resolve().parents[1]
EXISTING, NEW = 500, 500  # users folded in
NEW_EVENTS, NEW_USER_EVENTS = 5, 10  # events each
BIAS_SHRINKAGE = 5.0  # damped means of the bias-only baseline (best of 5, 10, 25 on a validation split)
SWEEP = [0.1, 1.0, 10.0, 25.0, 100.0]  # fold_in_regularization values compared
REPEATS = 3  # timed fold-in runs, each on a fresh copy of the model


def bias_only(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """Mean + item bias + user bias, each a damped mean of the residual ratings."""
    mean = train[S.VALUE].mean()
    item = (train[S.VALUE] - mean).groupby(train[S.ITEM_ID]).agg(["sum", "size"])
    item_bias = item["sum"] / (item["size"] + BIAS_SHRINKAGE)
    resid = train[S.VALUE] - mean - train[S.ITEM_ID].map(item_bias)
    user = resid.groupby(train[S.USER_ID]).agg(["sum", "size"])
    user_bias = user["sum"] / (user["size"] + BIAS_SHRINKAGE)
    pred = mean + test[S.ITEM_ID].map(item_bias).fillna(0).to_numpy() + test[S.USER_ID].map(user_bias).fillna(0).to_numpy()
    return np.clip(pred, train[S.VALUE].min(), train[S.VALUE].max())


def errors(pred: np.ndarray, truth: pd.DataFrame) -> dict:
    diff = pred - truth[S.VALUE].to_numpy()
    return {"rmse": round(float(np.sqrt(np.mean(diff**2))), 4), "mae": round(float(np.mean(np.abs(diff))), 4)}


def fold_in_events(train: pd.DataFrame, test: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The new events (existing users' next events, new users' copies of old ones) and the
    held-out events to score the folded-in users on."""
    order = [S.USER_ID, S.TIMESTAMP, S.ITEM_ID]
    train, test = train.sort_values(order), test.sort_values(order)
    rng = np.random.default_rng(seed)
    counts = test[S.USER_ID].value_counts()
    existing = rng.choice(np.sort(counts.index[counts > NEW_EVENTS]), EXISTING, replace=False)
    ahead = test[test[S.USER_ID].isin(existing)]
    new_for_existing = ahead.groupby(S.USER_ID).head(NEW_EVENTS)
    originals = rng.choice(np.sort(train[S.USER_ID].unique()), NEW, replace=False)
    def renamed(frame):
        return frame.assign(**{S.USER_ID: "new-" + frame[S.USER_ID].astype(str)})

    copies = renamed(train[train[S.USER_ID].isin(originals)].groupby(S.USER_ID).head(NEW_USER_EVENTS))
    held_out = pd.concat([ahead.drop(new_for_existing.index), renamed(test[test[S.USER_ID].isin(originals)])])
    return pd.concat([new_for_existing, copies], ignore_index=True), held_out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "ml-100k")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "benchmarks" / "mf_fold_in.json")
    args = parser.parse_args()
    offline_defaults()
    settings = Settings()
    movielens = args.data.is_dir()
    tables = load_source("movielens", args.data) if movielens else load_source("synthetic", None, preset="small")
    parts = temporal_split(tables.events, SplitConfig(test_fraction=0.2, valid_fraction=None, min_user_events=2))
    train, test = parts["train"], parts["test"]
    data = InteractionData.build(train, tables.items, tables.users, settings.interactions)
    config = settings.models.mf

    started = time.perf_counter()
    model = MFRecommender(config, seed=settings.seed).fit(data)
    fit_seconds = time.perf_counter() - started
    truth = relevant_items(test, list(settings.interactions.positive_event_types))
    ranking = {f"{r['metric']}@{r['k']}": round(r["value"], 4) for r in score_model(model, truth, ["ndcg", "recall"], [10])}
    rating_error = {}
    if model.explicit_:
        biases = copy.deepcopy(model)
        biases.user_factors_[:] = 0
        rating_error = {
            "mf": errors(model.predict(test[S.USER_ID], test[S.ITEM_ID]), test),
            "mf without its interaction term": errors(biases.predict(test[S.USER_ID], test[S.ITEM_ID]), test),
            f"bias-only baseline (damped means, {BIAS_SHRINKAGE:g})": errors(bias_only(train, test), test),
        }

    events, held_out = fold_in_events(train, test, settings.seed)
    held_out = held_out[held_out[S.EVENT_TYPE] == "rating"] if model.explicit_ else held_out
    seconds = []
    for _ in range(REPEATS):
        fresh = copy.deepcopy(model)
        started = time.perf_counter()
        fold_in(fresh, events, settings.interactions)
        seconds.append(time.perf_counter() - started)
    users = events[S.USER_ID].nunique()
    timing = {
        "users": users,
        "events": len(events),
        "seconds": round(min(seconds), 4),
        "ms_per_user": round(1000 * min(seconds) / users, 3),
        "seconds_each_run": [round(s, 4) for s in seconds],
    }
    sweep = {}
    if model.explicit_:
        existing = held_out[~held_out[S.USER_ID].str.startswith("new-")]
        new = held_out[held_out[S.USER_ID].str.startswith("new-")]
        originals = new.assign(**{S.USER_ID: new[S.USER_ID].str.removeprefix("new-")})
        sweep["before fold-in"] = {
            "existing users": errors(model.predict(existing[S.USER_ID], existing[S.ITEM_ID]), existing)["rmse"],
            "new users": errors(model.predict(new[S.USER_ID], new[S.ITEM_ID]), new)["rmse"],
        }
        sweep["new users' originals, trained on their whole history"] = {
            "new users": errors(model.predict(originals[S.USER_ID], originals[S.ITEM_ID]), originals)["rmse"]
        }
        for penalty in SWEEP:
            folded = copy.deepcopy(model)
            folded.config = config.model_copy(update={"fold_in_regularization": penalty})
            fold_in(folded, events, settings.interactions)
            sweep[f"fold_in_regularization {penalty:g}"] = {
                "existing users": errors(folded.predict(existing[S.USER_ID], existing[S.ITEM_ID]), existing)["rmse"],
                "new users": errors(folded.predict(new[S.USER_ID], new[S.ITEM_ID]), new)["rmse"],
            }

    report = {
        "data": "MovieLens 100K" if movielens else "synthetic small (ML-100K not found)",
        "protocol": "per-user last 20% by time (ties by item id) held out",
        "feedback": "explicit" if model.explicit_ else "implicit",
        "config": config.model_dump(mode="json"),
        "train_events": len(train),
        "test_events": len(test),
        "fit_seconds": round(fit_seconds, 2),
        "ranking": ranking,
        "rating_error": rating_error,
        "fold_in": timing,
        "fold_in_rmse": sweep,
        "machine": "2 CPU cores, shared",
    }
    md = [f"# MF and fold-in on {report['data']} ({report['feedback']} feedback)", ""]
    md += [f"Fit: {report['fit_seconds']} s on {len(train)} events."]
    md += ["", pd.Series(ranking, name="value").to_markdown()]
    if rating_error:
        md += ["", "Rating error on the held-out ratings:", "", pd.DataFrame(rating_error).T.to_markdown(floatfmt=".4f")]
    md += ["", f"Fold-in of {EXISTING} existing users ({NEW_EVENTS} new events each) and {NEW} new users "]
    md[-1] += f"({NEW_USER_EVENTS} events each) in one call, best of {REPEATS}:"
    md += ["", pd.Series({k: v for k, v in timing.items() if k != "seconds_each_run"}, name="value").to_markdown()]
    if sweep:
        table = pd.DataFrame(sweep).T
        table = table.astype(object).where(table.notna(), None)
        md += ["", "RMSE of the folded-in users on the held-out ratings they did not get:", ""]
        md += [table.to_markdown(floatfmt=".4f", missingval="")]
    text = "\n".join(md) + "\n"
    print(text)
    write_report(args.out, report, text)


if __name__ == "__main__":
    main()
