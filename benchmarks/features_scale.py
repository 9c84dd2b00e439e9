"""Feature building at scale: the synthetic instacart shop (about 40M events) through
recmill.features.build_features with its default memory limit (8GB) and threads (2).

Three steps, each timed and its peak resident memory taken: generating the shop,
writing events and items to parquet with pyarrow, and building the features. Generation
and writing run in one child process (its peak is reset between the two), the feature
step in another, so each peak is that step's alone and DuckDB's memory counts. Features
use the events before 2026-06-01, leaving the last month as a label window. ``--scale``
keeps that share of the preset's users (events scale with it), to try a run small first.

    .venv/bin/python benchmarks/features_scale.py [--preset instacart] [--scale 1.0]

Writes reports/benchmarks/features_scale.json and .md, and prints the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
from report import write_report

REPO = Path(__file__).resolve().parents[1]
CUTOFF = datetime(2026, 6, 1)
TARGET_GIB = 12
GIB = 2**30


def peak_rss() -> int:
    """This process's peak resident memory in bytes since start or the last reset_peak."""
    return int(re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: resets VmHWM to the current RSS


def generate_step(preset: str, scale: float, directory: Path) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from recmill.data.sources import synthetic

    if scale != 1.0:
        name = f"{preset} x{scale:g}"
        base = synthetic.PRESETS[preset]
        synthetic.PRESETS[name] = dataclasses.replace(base, users=max(1, round(base.users * scale)))
        preset = name
    reset_peak()
    started = time.perf_counter()
    tables = synthetic.generate(preset, seed=42)
    generated = {"seconds": time.perf_counter() - started, "peak_bytes": peak_rss()}
    reset_peak()
    started = time.perf_counter()
    for name in ("events", "items"):
        table = pa.Table.from_pandas(getattr(tables, name), preserve_index=False)
        pq.write_table(table, directory / f"{name}.parquet")
        del table
    written = {
        "seconds": time.perf_counter() - started,
        "peak_bytes": peak_rss(),
        "events_parquet_bytes": (directory / "events.parquet").stat().st_size,
    }
    return {"events": len(tables.events), "items": len(tables.items), "generate": generated, "write_parquet": written}


def features_step(directory: Path) -> dict:
    import pyarrow.parquet as pq

    from recmill.features import build_features

    reset_peak()
    started = time.perf_counter()
    paths = build_features(directory / "events.parquet", directory / "items.parquet", directory / "features", cutoff=CUTOFF)
    step = {"seconds": time.perf_counter() - started, "peak_bytes": peak_rss()}
    step["rows"] = {name: pq.read_metadata(path).num_rows for name, path in paths.items() if path.suffix == ".parquet"}
    return step


def child(step: str, *args: str) -> dict:
    """Run one step in a fresh interpreter; it prints its figures as JSON on its last line."""
    out = subprocess.run([sys.executable, __file__, "--step", step, *args], check=True, stdout=subprocess.PIPE, text=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="instacart")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "benchmarks" / "features_scale.json")
    parser.add_argument("--step", choices=["generate", "features"], help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step == "generate":
        print(json.dumps(generate_step(args.preset, args.scale, args.dir)))
        return
    if args.step == "features":
        print(json.dumps(features_step(args.dir)))
        return

    with tempfile.TemporaryDirectory(prefix="features-scale-") as work:
        data = child("generate", "--preset", args.preset, "--scale", str(args.scale), "--dir", work)
        features = child("features", "--dir", work)
    steps = {"generate": data["generate"], "write parquet": data["write_parquet"], "build features": features}
    table = pd.DataFrame(
        {name: {"seconds": round(s["seconds"], 1), "peak RSS (GiB)": round(s["peak_bytes"] / GIB, 2)} for name, s in steps.items()}
    ).T
    report = {
        "preset": args.preset,
        "scale": args.scale,
        "events": data["events"],
        "items": data["items"],
        "events_parquet_mib": round(data["write_parquet"]["events_parquet_bytes"] / 2**20, 1),
        "cutoff": CUTOFF.isoformat(),
        "feature_settings": {"memory_limit": "8GB", "threads": 2},
        "steps": table.to_dict(orient="index"),
        "feature_rows": features["rows"],
        "target_gib": TARGET_GIB,
        "features_within_target": features["peak_bytes"] <= TARGET_GIB * GIB,
        "machine": f"{os.cpu_count()} CPU cores, shared",
    }
    md = [f"# Feature building on the synthetic {args.preset} shop" + (f" (x{args.scale:g} users)" if args.scale != 1 else ""), ""]
    md += [f"{report['events']:,} events ({report['events_parquet_mib']} MiB of parquet), {report['items']:,} items; "]
    md[-1] += f"features from the events before {CUTOFF:%Y-%m-%d}, DuckDB with memory_limit 8GB and 2 threads."
    md += ["", "Each step in its own process (generation and writing share one; its peak is reset between them):", ""]
    md += [table.to_markdown(floatfmt=".2f")]
    md += ["", pd.Series(features["rows"], name="rows").to_markdown()]
    verdict = "within" if report["features_within_target"] else "over"
    md += ["", f"Feature step peak: {verdict} the {TARGET_GIB} GiB target. Machine: {report['machine']}."]
    text = "\n".join(md) + "\n"
    print(text)
    write_report(args.out, report, text)


if __name__ == "__main__":
    main()
