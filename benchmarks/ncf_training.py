"""Training cost and quality of the hybrid NCF model, beside popularity, with params.yaml's settings.

    .venv/bin/python benchmarks/ncf_training.py [--data ../shared/datasets/ml-100k] [--datasets synthetic ml100k]

Holdouts as in benchmarks/quality.py: synthetic is the default shop with the pipeline's
split (fit on train + valid, scored on test purchases the user did not already have);
ml100k is the shared protocol (each user's last 20% of ratings held out). For each: the
fit's seconds, epochs run until early stopping, the best epoch, seconds per epoch, the
device, the validation NDCG@10 the model kept, and NDCG@10 / Recall@10 on the holdout.
Writes reports/benchmarks/ncf_training.json and .md, and prints the table.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from quality import holdout  # the sibling benchmark's holdouts
from report import write_report

from recmill.data.interactions import InteractionData
from recmill.evaluation.holdout import score_model
from recmill.models import ncf_training
from recmill.models.ncf import NCFRecommender
from recmill.models.popularity import PopularityRecommender
from recmill.runtime import offline_defaults
from recmill.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
METRICS = ["ndcg", "recall"]


def quality(model, truth: dict) -> dict:
    return {f"{r['metric']}@{r['k']}": round(r["value"], 4) for r in score_model(model, truth, METRICS, [10])}


def run(dataset: str, settings, data_dir: Path) -> dict:
    tables, train, test, truth = holdout(dataset, settings, data_dir)
    data = InteractionData.build(train, tables.items, tables.users, settings.interactions)
    started = time.perf_counter()
    popularity = PopularityRecommender(settings.models.popularity, seed=settings.seed).fit(data)
    baseline = {"fit_seconds": round(time.perf_counter() - started, 2), **quality(popularity, truth)}
    started = time.perf_counter()
    model = NCFRecommender(settings.models.ncf, seed=settings.seed).fit(data)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    scores = quality(model, truth)
    history = model.history_
    epochs = history["epochs"]
    row = {
        "fit_seconds": round(fit_seconds, 1),
        "training_seconds": history["seconds"],
        "epochs": len(epochs),
        "best_epoch": history["best_epoch"],
        "stopped_early": len(epochs) < settings.models.ncf.epochs,
        "seconds_per_epoch": round(float(np.mean([e["seconds"] for e in epochs])), 2),
        "valid_ndcg@10": round(history["best_valid_ndcg@10"], 4) if history["best_valid_ndcg@10"] is not None else None,
        **scores,
        "scoring_seconds": round(time.perf_counter() - started, 1),
        "device": history["device"],
    }
    print(f"{dataset}: ncf {row}; popularity {baseline}", flush=True)
    return {
        "train_events": len(train),
        "users": data.n_users,
        "items": data.n_items,
        "had_pairs": int(data.positive.nnz),
        "users_scored": len(truth),
        "ncf": row,
        "popularity": baseline,
        "user_features": list(model.features_.user_names),
        "item_features": list(model.features_.item_names),
        "history": epochs,
    }


def markdown(report: dict) -> str:
    rows = []
    for dataset, r in report["datasets"].items():
        n = r["ncf"]
        shown = ("ndcg@10", "recall@10", "fit_seconds", "epochs", "best_epoch", "seconds_per_epoch", "valid_ndcg@10")
        rows.append({"dataset": dataset, "model": "ncf", **{k: n[k] for k in shown}})
        rows.append({"dataset": dataset, "model": "popularity", **r["popularity"]})
    table = pd.DataFrame(rows)
    cfg = report["config"]
    lines = [
        "# NCF training",
        "",
        f"Device: {report['device']} ({report['threads']} torch thread), {report['machine']}, load average "
        f"{report['load_average_at_start']} at the start. Settings: params.yaml models.ncf "
        f"(batch {cfg['batch_size']}, up to {cfg['epochs']} epochs, patience {cfg['patience']}, loss {cfg['loss']}, "
        f"{cfg['negatives']} negatives per positive).",
        "",
        table.astype(object).where(table.notna(), None).to_markdown(index=False, missingval=""),
        "",
    ]
    for dataset, r in report["datasets"].items():
        lines.append(
            f"- {dataset}: {r['train_events']:,} training events, {r['users']:,} users, {r['items']:,} items, "
            f"{r['had_pairs']:,} pairs had (each with {cfg['negatives']} negatives an epoch), {r['users_scored']:,} users scored; "
            f"user features {', '.join(r['user_features'])}; item features {', '.join(r['item_features'])}."
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "ml-100k")
    parser.add_argument("--datasets", nargs="+", choices=["synthetic", "ml100k"], default=["synthetic", "ml100k"])
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "benchmarks")
    args = parser.parse_args()
    offline_defaults()
    settings = load_settings(REPO / "params.yaml")
    report = {
        "device": str(ncf_training.resolve_device(settings.models.ncf.device)),
        "threads": ncf_training.THREADS,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}",
        "load_average_at_start": round(os.getloadavg()[0], 2),  # other work on the same cores slows the figures
        "config": settings.models.ncf.model_dump(mode="json"),
        "datasets": {dataset: run(dataset, settings, args.data) for dataset in args.datasets},
    }
    text = markdown(report)
    print(text)
    write_report(args.out / "ncf_training.json", report, text)


if __name__ == "__main__":
    main()
