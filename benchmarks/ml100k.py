"""Quality on MovieLens 100K with the shared protocol, beside the reference peers.

Protocol (shared/datasets/ml-100k/README.md): per user, ratings sorted by (timestamp,
item id), the last 20% (at least one) held out; every rating is a positive; 10 items per
user from the full catalogue, excluding the user's training items; metrics averaged over
users with a test item.

    .venv/bin/python benchmarks/ml100k.py [--data ../shared/datasets/ml-100k]

Writes reports/benchmarks/ml100k.json and .md, and prints the table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from recmill.config import ALSConfig, PopularityConfig, Settings, SplitConfig
from recmill.data.interactions import InteractionData
from recmill.data.sources import load_source
from recmill.data.split import relevant_items, temporal_split
from recmill.evaluation.holdout import score_model
from recmill.models import REGISTRY
from recmill.runtime import offline_defaults

REPO = Path(__file__).resolve().parents[1]
REFERENCE = {  # from the dataset's README, measured by strong peers on this protocol
    "most popular (reference)": {"ndcg@10": 0.116, "recall@10": 0.060, "precision@10": 0.105, "map@10": 0.054},
    "implicit ALS (reference)": {"ndcg@10": 0.194, "recall@10": 0.113, "precision@10": 0.169, "map@10": 0.099},
    "BM25 item-kNN (reference)": {"ndcg@10": 0.179, "recall@10": 0.102, "precision@10": 0.157, "map@10": 0.094},
    "EASE lambda 250 (reference)": {"ndcg@10": 0.198, "recall@10": 0.115, "precision@10": 0.174, "map@10": 0.103},
}
METRICS = ["ndcg", "recall", "precision", "map"]


def candidates(settings: Settings) -> dict[str, tuple[str, object, bool]]:
    """label -> (model name, config, ratings as binary positives?)."""
    reference_als = ALSConfig(factors=32, regularization=1.0, alpha=1.0, iterations=15)
    return {
        "popularity": ("popularity", PopularityConfig(), False),
        "als (reference settings, binary)": ("als", reference_als, True),
        "als (reference settings, rating-weighted)": ("als", reference_als, False),
        "als (params.yaml settings)": ("als", settings.models.als, False),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "ml-100k")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "benchmarks" / "ml100k.json")
    args = parser.parse_args()
    offline_defaults()
    settings = Settings()
    tables = load_source("movielens", args.data)
    parts = temporal_split(tables.events, SplitConfig(test_fraction=0.2, valid_fraction=None, min_user_events=2))
    train = parts["train"]
    truth = relevant_items(parts["test"], ["rating"])
    results = {}
    for label, (name, config, binary) in candidates(settings).items():
        events = train.assign(event_type="purchase", value=1.0) if binary else train
        data = InteractionData.build(events, tables.items, tables.users, settings.interactions)
        started = time.perf_counter()
        model = REGISTRY[name](config, seed=settings.seed).fit(data)
        fit_seconds = time.perf_counter() - started
        rows = score_model(model, truth, METRICS, [10])
        results[label] = {f"{r['metric']}@{r['k']}": round(r["value"], 4) for r in rows} | {"fit_seconds": round(fit_seconds, 2)}
    report = {
        "protocol": "per-user last 20% by time (ties by item id), full catalogue, training items excluded",
        "users_scored": len(truth),
        "train_events": len(train),
        "test_events": len(parts["test"]),
        "models": results,
        "reference": REFERENCE,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    table = pd.DataFrame({**results, **REFERENCE}).T[["ndcg@10", "recall@10", "precision@10", "map@10", "fit_seconds"]]
    title = f"MovieLens 100K, {len(truth)} users scored, {report['protocol']}"
    args.out.with_suffix(".md").write_text(f"# {title}\n\n{table.astype(object).where(table.notna(), None).to_markdown(floatfmt='.4f', missingval='')}\n")
    print(title + "\n")
    print(table.to_string(float_format=lambda v: f"{v:.4f}", na_rep=""))
    print(f"\nwritten to {args.out} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
