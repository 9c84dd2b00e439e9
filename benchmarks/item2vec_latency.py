"""Latency of one user's item2vec recommendations, end to end through model.recommend.

Trains item2vec (params.yaml defaults) on the synthetic small shop, then asks for one
user's top 20 at a time (the user's vector, the FAISS search, leaving out what they have,
the result frame) for 1,000 users. Then the same on a 50,000-item catalogue: the trained
model with random unit vectors for 50,000 items (the index size is what matters there),
searched exactly (the default up to config.exact_index_max_items) and with each approximate
index. Each approximate index is also tried on the trained vectors; recall_vs_exact is the
share of the exact search's 20 items that it returns too.

    .venv/bin/python benchmarks/item2vec_latency.py

Writes reports/benchmarks/item2vec_latency.json and .md, and prints the table.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from report import write_report

from recmill.config import Settings
from recmill.data.interactions import InteractionData
from recmill.data.sources import load_source
from recmill.models.base import unit_rows
from recmill.models.item2vec import Item2VecRecommender
from recmill.runtime import offline_defaults

REPO = Path(__file__).resolve().parents[1]


def widen(model: Item2VecRecommender, n_items: int, config, seed: int) -> Item2VecRecommender:
    """The fitted model with a catalogue of n_items: the new items unseen and unpopular,
    every item a random unit vector (no structure: the hardest case for an approximate index)."""
    wide = Item2VecRecommender(config, seed=model.seed)
    wide.__dict__.update({k: v for k, v in model.__dict__.items() if k.endswith("_")})
    extra = n_items - len(model.item_ids_)
    wide.item_ids_ = np.concatenate([model.item_ids_, np.char.add("new-", np.arange(extra).astype(str))])
    wide.item_names_ = np.concatenate([model.item_names_, wide.item_ids_[-extra:]])
    wide.item_categories_ = np.concatenate([model.item_categories_, np.full(extra, "")])
    shape = (len(model.user_ids_), n_items)
    wide.seen_, wide.weights_, wide.event_code_ = (sp.csr_matrix((m.data, m.indices, m.indptr), shape=shape) for m in (model.seen_, model.weights_, model.event_code_))
    wide.popularity_ = np.concatenate([model.popularity_, np.zeros(extra)])
    wide.popular_ = np.concatenate([model.popular_, np.arange(len(model.item_ids_), n_items)])
    rng = np.random.default_rng(seed)
    wide.placed_ = np.arange(n_items)
    wide.vectors_ = unit_rows(rng.standard_normal((n_items, model.vectors_.shape[1]))).astype(np.float32)
    wide._build()
    return wide


def one_at_a_time(model: Item2VecRecommender, users: list[str], k: int) -> tuple[np.ndarray, list[list[str]]]:
    """Milliseconds per user and each user's items."""
    model.recommend(users[:20], k=k)  # warm-up
    times, items = [], []
    for user in users:
        started = time.perf_counter()
        recs = model.recommend([user], k=k)
        times.append((time.perf_counter() - started) * 1000)
        items.append(recs["item_id"].tolist())
    return np.asarray(times), items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "benchmarks" / "item2vec_latency.json")
    args = parser.parse_args()
    offline_defaults()
    settings = Settings()
    config = settings.models.item2vec
    tables = load_source("synthetic", None, preset="small")
    data = InteractionData.build(tables.events, tables.items, tables.users, settings.interactions)
    started = time.perf_counter()
    model = Item2VecRecommender(config, seed=settings.seed).fit(data)
    fit_seconds = time.perf_counter() - started
    users = list(np.random.default_rng(settings.seed).choice(model.user_ids_, size=min(args.users, len(model.user_ids_)), replace=False))

    index_names = {"hnsw": f"IndexHNSWFlat, {config.hnsw_neighbours} neighbours", "ivf": f"IndexIVFFlat, {config.ivf_lists} lists"}
    cases = {}  # label -> (model, what to report, the exact case to compare with)

    def approximate(kind: str, n_items: int):
        return config.model_copy(update={"exact_index_max_items": n_items - 1, "approximate_index": kind})

    cases["synthetic small"] = (model, {"index": "exact (IndexFlatIP)", "vectors": "trained"}, None)
    for kind in ("hnsw", "ivf"):
        trained = Item2VecRecommender(approximate(kind, len(model.placed_)), seed=model.seed)
        trained.__dict__.update({k: v for k, v in model.__dict__.items() if k.endswith("_")})
        trained._build()
        cases[f"synthetic small, {kind}"] = (trained, {"index": index_names[kind], "vectors": "trained"}, "synthetic small")
    big = f"{args.items:,} items"
    exact_config = config.model_copy(update={"exact_index_max_items": args.items})
    cases[big] = (widen(model, args.items, exact_config, settings.seed), {"index": "exact (IndexFlatIP)", "vectors": "random"}, None)
    for kind in ("hnsw", "ivf"):
        started = time.perf_counter()
        wide = widen(model, args.items, approximate(kind, args.items), settings.seed)
        info = {"index": index_names[kind], "vectors": "random", "build_seconds": round(time.perf_counter() - started, 1)}
        cases[f"{big}, {kind}"] = (wide, info, big)

    results, lists = {}, {}
    for label, (m, info, exact) in cases.items():
        ms, lists[label] = one_at_a_time(m, users, args.k)
        results[label] = {**info, "catalogue": len(m.item_ids_), "p50_ms": round(float(np.percentile(ms, 50)), 2),
                          "p99_ms": round(float(np.percentile(ms, 99)), 2), "mean_ms": round(float(ms.mean()), 2)}
        if exact is not None:
            pairs = zip(lists[label], lists[exact])
            results[label]["recall_vs_exact"] = round(float(np.mean([len(set(a) & set(b)) / len(b) for a, b in pairs])), 4)

    report = {
        "what": f"model.recommend([user], k={args.k}) one user at a time, {len(users)} users (after 20 warm-up users)",
        "config": config.model_dump(mode="json"),
        "fit_seconds": round(fit_seconds, 1),
        "cpu_cores": os.cpu_count(),
        "target_ms": 10,
        "cases": results,
    }
    table = pd.DataFrame(results).T[["index", "vectors", "catalogue", "p50_ms", "p99_ms", "mean_ms", "recall_vs_exact", "build_seconds"]]
    title = f"item2vec latency: {report['what']}, {os.cpu_count()} cores; fit {report['fit_seconds']} s on the synthetic small shop"
    table = table.astype(object).where(table.notna(), None)
    print(title + "\n")
    print(table.to_string(na_rep="") + "\n")
    write_report(args.out, report, f"# {title}\n\n{table.to_markdown(missingval='')}\n")


if __name__ == "__main__":
    main()
