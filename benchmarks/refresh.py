"""Refreshing users between retrains on the instacart preset.

Set-up, once (kept under --work; --fresh starts it again): `recmill run` on the instacart
preset (206,209 users, 49,688 items, 40M events) with the models a refresh republishes
from: popularity, als (the champion the gate picks) and reorder (buy_again). Then each
repeat drops an increments file holding 3 purchases for each of --users users (a seeded
sample of the published users, one in twenty of them new) and folds it in: the refresh
stage's wall and CPU seconds and peak memory, in this process, then once the whole
`recmill refresh` command (Prefect's start included).

    .venv/bin/python benchmarks/refresh.py [--users 10000] [--repeats 3] [--work data/bench/refresh]

Writes reports/benchmarks/refresh.json and .md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from report import folder_settings, write_report

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from recmill import warehouse  # noqa: E402
from recmill.runtime import measured_run, offline_defaults  # noqa: E402
from recmill.settings import load_settings  # noqa: E402

MODELS = "[popularity, als, reorder]"


def overrides(work: Path) -> list[str]:
    return ["data.preset=instacart", *folder_settings(work), f"refresh.increments={work / 'increments'}", f"train.models={MODELS}"]


def recmill(command: str, work: Path) -> float:
    """Run a recmill command on the benchmark's data; its wall seconds."""
    args = [str(Path(sys.executable).with_name("recmill")), command, *(a for o in overrides(work) for a in ("--set", o))]
    started = time.perf_counter()
    with open(work / f"{command}.log", "a") as log:
        subprocess.run(args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    return time.perf_counter() - started


def arrivals(work: Path, n_users: int, seed: int) -> Path:
    """An increments file: 3 purchases each for n_users users, 5% of them new."""
    rng = np.random.default_rng(seed)
    db = work / "warehouse.duckdb"
    users = warehouse.query(db, "SELECT DISTINCT user_id FROM recommendations ORDER BY user_id")["user_id"].to_numpy()
    items = warehouse.query(db, "SELECT item_id FROM items ORDER BY item_id")["item_id"].to_numpy()
    n_new = n_users // 20
    chosen = np.concatenate([rng.choice(users, size=n_users - n_new, replace=False), [f"new-{seed}-{i}" for i in range(n_new)]])
    now = pd.Timestamp.now("UTC").tz_localize(None)
    frame = pd.DataFrame({
        "user_id": np.repeat(chosen, 3), "item_id": rng.choice(items, size=3 * len(chosen)),
        "timestamp": now - pd.to_timedelta(rng.integers(1, 3600, size=3 * len(chosen)), unit="s"), "event_type": "purchase",
    })
    path = work / "increments" / f"arrivals-{seed}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def markdown(report: dict) -> str:
    rows = "\n".join(
        f"| {r['repeat']} | {r['users']:,} | {r['events']:,} | {r['wall_s']:.1f} s | {r['cpu_s']:.1f} s | {r['peak_rss_gib']:.2f} GiB |"
        for r in report["repeats"]
    )
    return f"""# Refreshing users between retrains (benchmarks/refresh.py)

Machine: {report['machine']}. Data: the instacart preset ({report['published_users']:,} users with lists), published by `recmill run` with
{MODELS} (champion: {report['champion']}); set-up {report['setup_s']:.0f} s. Each repeat folds in 3 purchases for each of
{report['users']:,} users (5% of them new) and republishes their rows of `recommendations` and `buy_again`.

| repeat | users | new events | refresh wall | CPU | peak memory |
| ---: | ---: | ---: | ---: | ---: | ---: |
{rows}

The whole `recmill refresh` command, Prefect's temporary server included: {report['command_s']:.1f} s.
Target: {report['users']:,} users refreshed in 10 s or less ({'met' if report['best_wall_s'] <= 10 else 'not met'}: best {report['best_wall_s']:.1f} s).
Where a refresh spends its time: reports/benchmarks/profile_refresh.txt (py-spy, `benchmarks/profile_stage.py --stacks`).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=REPO / "data" / "bench" / "refresh")
    parser.add_argument("--fresh", action="store_true", help="run the set-up again")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "benchmarks")
    args = parser.parse_args()
    offline_defaults()
    work = args.work.resolve()
    if args.fresh:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    setup_s = float((work / "setup_s").read_text()) if (work / "setup_s").exists() else None
    if setup_s is None:
        print("set-up: recmill run on the instacart preset ...", flush=True)
        setup_s = recmill("run", work)
        (work / "setup_s").write_text(f"{setup_s:.1f}")
    shutil.rmtree(work / "increments", ignore_errors=True)
    settings = load_settings(REPO / "params.yaml", overrides(work))
    import pipelines.refresh

    repeats = []
    for repeat in range(1, args.repeats + 1):
        arrivals(work, args.users, seed=repeat)
        result, figures = measured_run(pipelines.refresh.run, settings)
        repeats.append({"repeat": repeat, "users": result["users"], "events": result["events"], **figures})
        print(f"repeat {repeat}: {result['users']:,} users, {figures['wall_s']:.1f} s, {figures['peak_rss_gib']:.2f} GiB", flush=True)
    arrivals(work, args.users, seed=args.repeats + 1)
    command_s = recmill("refresh", work)
    db = work / "warehouse.duckdb"
    report = {
        "machine": f"{os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB",
        "measured": datetime.now().isoformat(timespec="minutes"),
        "users": args.users, "setup_s": setup_s, "repeats": repeats, "command_s": round(command_s, 1),
        "best_wall_s": min(r["wall_s"] for r in repeats),
        "published_users": int(warehouse.query(db, "SELECT count(DISTINCT user_id) AS n FROM recommendations")["n"].item()),
        "champion": warehouse.query(db, "SELECT any_value(model) || ' v' || any_value(model_version) AS c FROM recommendations")["c"].item(),
    }
    write_report(args.out / "refresh.json", report, markdown(report))


if __name__ == "__main__":
    main()
