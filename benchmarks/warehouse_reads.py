"""Reading the warehouse while it is published: instacart-sized tables (206,209 users x 20
recommendations, 49,688 items), 4 reader processes doing single-user lookups and
category-filtered queries (a user's recommendations in one category, with their names)
while publishes run back to back, twice: each query on a new read-only connection, then
each reader keeping one (recmill.warehouse.Reader, reopened when a publish switches in a
new file). Measured: the time of each publish of the 4.1M-row table, and the latency of
every query (p50, p99, max) and the failed ones.

    .venv/bin/python benchmarks/warehouse_reads.py [--users 206209] [--publishes 3] [--readers 4]

Writes reports/benchmarks/warehouse_reads.json and .md.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from report import write_report

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from recmill import warehouse  # noqa: E402

K = 20
CATEGORIES = [f"aisle {i}" for i in range(134)]
LOOKUP = "SELECT rank, item_id, score, reason FROM recommendations WHERE user_id = ? ORDER BY rank"
BY_CATEGORY = "SELECT rank, item_id, item_name FROM recommendations WHERE user_id = ? AND item_category = ? ORDER BY rank"


def frames(n_users: int, n_items: int, seed: int) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    users = np.arange(1, n_users + 1).astype(str)
    items = np.arange(1, n_items + 1).astype(str)
    picked = rng.integers(0, n_items, size=(n_users, K))
    return {
        "recommendations": pd.DataFrame({
            "user_id": np.repeat(users, K), "item_id": items[picked.ravel()], "rank": np.tile(np.arange(1, K + 1), n_users),
            "score": np.tile(np.linspace(1, 0, K), n_users), "model": "als", "model_version": "1",
            "reason": "because you bought Bananas and Fresh Cilantro", "run_id": f"bench-{seed}", "generated_at": datetime(2026, 1, 1),
        }),
        "items": pd.DataFrame({
            "item_id": items, "name": [f"Product {i}" for i in items], "category": np.array(CATEGORIES)[np.arange(n_items) % len(CATEGORIES)],
            "brand": "Brand", "price": 2.5,
        }),
    }


def reader(path: str, n_users: int, seed: int, kept: bool, stop, out) -> None:
    rng = np.random.default_rng(seed)
    latencies, failed, errors = [], 0, []
    kept_reader = warehouse.Reader(path)
    while not stop.is_set():
        user = str(rng.integers(1, n_users + 1))
        sql, params = (LOOKUP, [user]) if rng.random() < 0.5 else (BY_CATEGORY, [user, CATEGORIES[rng.integers(len(CATEGORIES))]])
        started = time.perf_counter()
        try:
            if kept:
                kept_reader.rows(sql, params)
            else:
                con = warehouse.connect(path)
                try:
                    con.execute(sql, params).fetchall()
                finally:
                    con.close()
            latencies.append(time.perf_counter() - started)
        except Exception as exc:  # every failure counts, whatever its kind
            failed += 1
            errors.append(str(exc)[:200])
    kept_reader.close()
    out.put({"latencies": latencies, "failed": failed, "errors": errors[:5]})


def scenario(args, kept: bool, readers: int, publishes: int) -> dict:
    """One initial publish, readers started, then publishes while they read (for a few
    seconds when there are none)."""
    with tempfile.TemporaryDirectory(prefix="recmill-reads-") as work:
        path = Path(work) / "recmill.duckdb"
        publish_s = []
        started = time.perf_counter()
        warehouse.publish(path, frames(args.users, args.items, 0))
        publish_s.append(time.perf_counter() - started)
        ctx = mp.get_context("spawn")
        stop, out = ctx.Event(), ctx.Queue()
        processes = [ctx.Process(target=reader, args=(str(path), args.users, i, kept, stop, out)) for i in range(readers)]
        for p in processes:
            p.start()
        time.sleep(3)  # readers warm
        if not publishes:
            time.sleep(10)
        for i in range(1, publishes + 1):
            batch = frames(args.users, args.items, i)
            started = time.perf_counter()
            warehouse.publish(path, batch)
            publish_s.append(time.perf_counter() - started)
        time.sleep(1)
        stop.set()
        results = [out.get() for _ in processes]
        for p in processes:
            p.join()
    latencies = np.array([x for r in results for x in r["latencies"]]) * 1000
    return {
        "publish_seconds": [round(s, 2) for s in publish_s],
        "queries": int(len(latencies)), "failed": sum(r["failed"] for r in results),
        "errors": [e for r in results for e in r["errors"]][:5],
        "p50_ms": round(float(np.percentile(latencies, 50)), 2), "p99_ms": round(float(np.percentile(latencies, 99)), 2),
        "max_ms": round(float(latencies.max()), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=206_209)
    parser.add_argument("--items", type=int, default=49_688)
    parser.add_argument("--publishes", type=int, default=3)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "benchmarks" / "warehouse_reads.json")
    args = parser.parse_args()
    report = {"users": args.users, "items": args.items, "k": K, "readers": args.readers, "modes": {}}
    rows = []
    modes = {  # mode -> (kept connection, readers, publishes)
        "new connection per query": (False, args.readers, args.publishes),
        "kept connection (warehouse.Reader)": (True, args.readers, args.publishes),
        f"kept connection, {args.readers} readers, no publish: what they cost each other": (True, args.readers, 0),
        "kept connection, 1 reader, no publish: the queries' own cost": (True, 1, 0),
    }
    for mode, (kept, readers, publishes) in modes.items():
        figures = scenario(args, kept, readers, publishes)
        report["modes"][mode] = figures
        rows.append(
            f"| {mode} | {', '.join(f'{x:.1f}' for x in figures['publish_seconds'])} | {figures['queries']:,} | {figures['failed']} | "
            f"{figures['p50_ms']:.2f} ms | {figures['p99_ms']:.2f} ms | {figures['max_ms']:.1f} ms |"
        )
    md = "\n".join([
        "# Reading the warehouse while it is published (benchmarks/warehouse_reads.py)",
        "",
        f"{args.users:,} users x {K} recommendations, {args.items:,} items; {args.readers} reader processes "
        "(half single-user lookups, half a user's recommendations in one category with their names) "
        f"during {args.publishes} publishes, with each query on a new read-only connection, then with each reader "
        "keeping its connection until a publish switches in a new file; then the same readers for 10 s with no publish; "
        "last, one reader alone for 10 s, no publish: what a query costs when it has the machine to itself.",
        "",
        "| readers | publish (s, each) | queries | failed | p50 | p99 | max |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
        *rows,
        "",
    ])
    write_report(args.out, report, md)
    print(md)


if __name__ == "__main__":
    main()
