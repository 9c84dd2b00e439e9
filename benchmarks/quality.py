"""Every model's quality on one holdout, beside the reference peers where there are some.

    .venv/bin/python benchmarks/quality.py ml100k [--data ../shared/datasets/ml-100k]
    .venv/bin/python benchmarks/quality.py synthetic

ml100k follows the shared protocol (shared/datasets/ml-100k/README.md): per user, ratings
sorted by (timestamp, item id), the last 20% (at least one) held out; every rating is a
positive; 10 items per user from the full catalogue, excluding the user's training items;
metrics averaged over users with a test item. synthetic uses the default shop and the
pipeline's own split: models fit on train + valid, scored on test (purchases the user did
not already have), and a buy-again model on each user's next order (AUC, log loss,
next-basket F1 beside the baselines). Models use params.yaml's settings. Writes
reports/benchmarks/quality_<dataset>.json and .md, and prints the table.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import pandas as pd
from report import write_report

from recmill.config import ALSConfig, Settings, SplitConfig
from recmill.data.interactions import InteractionData
from recmill.data.sources import load_source
from recmill.data.split import items_by_user, relevant_items, temporal_split
from recmill.errors import ModelSkipped
from recmill.evaluation.basket import buy_again_metrics
from recmill.evaluation.holdout import score_model
from recmill.evaluation.metrics import RATING_METRICS
from recmill.models import MODEL_NAMES, model_class
from recmill.runtime import offline_defaults
from recmill.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
ML100K_REFERENCE = {  # from the dataset's README, measured by strong peers on this protocol
    "most popular (reference)": {"ndcg@10": 0.116, "recall@10": 0.060, "precision@10": 0.105, "map@10": 0.054},
    "implicit ALS (reference)": {"ndcg@10": 0.194, "recall@10": 0.113, "precision@10": 0.169, "map@10": 0.099},
    "BM25 item-kNN (reference)": {"ndcg@10": 0.179, "recall@10": 0.102, "precision@10": 0.157, "map@10": 0.094},
    "EASE lambda 250 (reference)": {"ndcg@10": 0.198, "recall@10": 0.115, "precision@10": 0.174, "map@10": 0.103},
}
COLUMNS = ["ndcg@10", "recall@10", "precision@10", "map@10", "coverage@10", "rmse", "mae", "fit_seconds"]


def holdout(dataset: str, settings: Settings, data_dir: Path):
    """(tables, training events, test events, truth) of the dataset's protocol."""
    if dataset == "ml100k":
        tables = load_source("movielens", data_dir)
        parts = temporal_split(tables.events, SplitConfig(test_fraction=0.2, valid_fraction=None, min_user_events=2))
        return tables, parts["train"], parts["test"], relevant_items(parts["test"], ["rating"])
    tables = load_source("synthetic", None, preset=settings.data.preset, seed=settings.seed)
    parts = temporal_split(tables.events, settings.split)
    train = pd.concat([parts["train"], parts["valid"]], ignore_index=True)
    positive = settings.interactions.positive_event_types
    return tables, train, parts["test"], relevant_items(parts["test"], positive, items_by_user(train, positive))


def candidates(dataset: str, settings: Settings) -> dict[str, tuple[str, object]]:
    """label -> (model name, config): every registered model with its params.yaml settings."""
    out = {name: (name, getattr(settings.models, name)) for name in MODEL_NAMES}
    if dataset == "ml100k":
        out["als (reference settings)"] = ("als", ALSConfig(factors=32, regularization=1.0, alpha=1.0, iterations=15))
    return out


def bias_only_errors(model, ratings: pd.DataFrame) -> dict[str, float]:
    """RMSE / MAE of mean + user bias + item bias alone: the baseline the factors must beat."""
    baseline = copy.copy(model)
    baseline.user_factors_ = np.zeros_like(model.user_factors_)
    predicted = baseline.predict(ratings["user_id"], ratings["item_id"])
    return {m: round(fn(ratings["value"], predicted), 4) for m, fn in RATING_METRICS.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=["ml100k", "synthetic"])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "ml-100k")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "benchmarks")
    args = parser.parse_args()
    offline_defaults()
    settings = load_settings(REPO / "params.yaml")
    tables, train, test, truth = holdout(args.dataset, settings, args.data)
    data = InteractionData.build(train, tables.items, tables.users, settings.interactions)
    ratings = test[test["event_type"] == "rating"]
    results, skipped, buy_again = {}, {}, {}
    for label, (name, config) in candidates(args.dataset, settings).items():
        started = time.perf_counter()
        try:
            model = model_class(name)(config, seed=settings.seed).fit(data)
        except ModelSkipped as exc:
            skipped[label] = str(exc)
            continue
        row = {"fit_seconds": round(time.perf_counter() - started, 2)}
        if model.predicts_reorders:  # scored on each user's next order, not as a ranking
            positive = settings.interactions.positive_event_types
            scores = buy_again_metrics(
                model.reorder_probabilities(), train[train["event_type"].isin(positive)], test[test["event_type"].isin(positive)]
            )
            buy_again[label] = {**row, **{m: round(v, 4) for m, v in scores.items()}}
            print(f"{label}: {buy_again[label]}", flush=True)
            continue
        for r in score_model(model, truth, ["ndcg", "recall", "precision", "map", "coverage"], [10]):
            row[f"{r['metric']}@{r['k']}"] = round(r["value"], 4)
        if model.predicts_ratings and len(ratings):
            predicted = model.predict(ratings["user_id"], ratings["item_id"])
            row.update({m: round(fn(ratings["value"], predicted), 4) for m, fn in RATING_METRICS.items()})
        results[label] = row
        print(f"{label}: {row}", flush=True)
        if name == "mf" and len(ratings):
            results["mf bias only (same fit, factor term off)"] = bias_only_errors(model, ratings)
    reference = ML100K_REFERENCE if args.dataset == "ml100k" else {}
    report = {
        "dataset": args.dataset,
        "users_scored": len(truth),
        "train_events": len(train),
        "test_events": len(test),
        "models": results,
        "buy_again": buy_again,
        "skipped": skipped,
        "reference": reference,
    }
    table = pd.DataFrame({**results, **reference}).T.reindex(columns=COLUMNS).dropna(axis=1, how="all")
    table = table.sort_values("ndcg@10", ascending=False, na_position="last")
    title = f"{args.dataset}: {len(truth)} users scored, {len(train):,} training and {len(test):,} test events"
    markdown = table.astype(object).where(table.notna(), None).to_markdown(floatfmt=".4f", missingval="")
    notes = "".join(f"\n- {label}: {why}" for label, why in skipped.items())
    if buy_again:
        baskets = pd.DataFrame(buy_again).T
        markdown += (
            f"\n\n## Buy again: each user's next complete order on test ({int(baskets['basket_users'].iloc[0])} users)\n\n"
            "basket_f1: expected-F1 baskets from the model's probabilities; the baselines repeat the last basket "
            "or take the user's most frequent items (as many as their mean basket size).\n\n"
            + baskets.drop(columns="basket_users").to_markdown(floatfmt=".4f")
        )
    write_report(args.out / f"quality_{args.dataset}.json", report, f"# {title}\n\n{markdown}\n{notes}\n")
    print(f"\n{title}\n")
    print(table.to_string(float_format=lambda v: f"{v:.4f}", na_rep=""))


if __name__ == "__main__":
    main()
