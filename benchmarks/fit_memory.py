"""Where one model's fit holds its memory: the fit on a run's data (one made by
pipeline_scale.py, say), with the process's resident memory sampled every second beside
the innermost recmill and pandas frames running then.

    .venv/bin/python benchmarks/fit_memory.py reorder --run data/bench/32m --preset instacart [--fit full] [--refresh] [--set KEY=VALUE]

With --refresh the fit is a refresh of the run's fit before it (train.refit): the test fit
for the full fit, the valid fit for the test fit.

Writes reports/benchmarks/fit_memory_<model>_<fit>.json and .md: wall time, peak resident
memory (the kernel's high-water mark), the sampled peaks with what ran then, and the
timeline at every tenth sample.
"""

from __future__ import annotations

import argparse
import resource
import sys
import threading
import time
import traceback
from pathlib import Path

from report import folder_settings, write_report

from recmill.fits import FIT_SPLITS, fit_data, refreshed_fit
from recmill.io import Layout
from recmill.models import build_model
from recmill.runtime import offline_defaults
from recmill.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
WATCHED = ("recmill", "pandas", "duckdb")  # the frames worth naming


def resident_gib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**30


def running(thread_id: int) -> str:
    """The innermost four watched frames of a thread, innermost first."""
    frame = sys._current_frames().get(thread_id)
    stack = traceback.extract_stack(frame) if frame else []
    names = [f"{f.name} ({Path(f.filename).name}:{f.lineno})" for f in stack if any(w in f.filename for w in WATCHED)]
    return " < ".join(reversed(names[-4:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--run", type=Path, required=True, help="the folder of a pipeline_scale.py size (data/, reports/, mlflow.db)")
    parser.add_argument("--preset", default=None, help="data.preset of that run")
    parser.add_argument("--fit", default="full", choices=["valid", "test", "full"])
    parser.add_argument("--refresh", action="store_true", help="refresh the run's fit before this one instead of training")
    parser.add_argument("--set", action="append", default=[], help="more settings of that run")
    args = parser.parse_args()
    offline_defaults()
    run = args.run.resolve()
    overrides = folder_settings(run)
    if args.preset:
        overrides.append(f"data.preset={args.preset}")
    overrides += args.set
    settings = load_settings(REPO / "params.yaml", overrides)

    samples: list[tuple[float, float, str]] = []
    main_thread, started, done = threading.main_thread().ident, time.perf_counter(), threading.Event()

    def watch() -> None:
        while not done.wait(1.0):
            samples.append((round(time.perf_counter() - started, 1), round(resident_gib(), 2), running(main_thread)))

    threading.Thread(target=watch, daemon=True).start()
    data = fit_data(settings, args.fit)
    loaded = time.perf_counter() - started
    if args.refresh:
        before = list(FIT_SPLITS)[list(FIT_SPLITS).index(args.fit) - 1]
        refreshed_fit(settings, args.model, Layout(settings).model_dir(args.model, before), args.fit)
    else:
        build_model(args.model, settings).fit(data)
    wall = time.perf_counter() - started
    done.set()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    top = sorted(samples, key=lambda s: -s[1])[:10]
    report = {
        "model": args.model, "fit": args.fit, "refresh": args.refresh, "run": str(run), "events": len(data.events), "users": len(data.user_ids),
        "items": len(data.item_ids), "data_seconds": round(loaded, 1), "wall_seconds": round(wall, 1),
        "peak_gib": round(peak, 2), "sampled_peaks": top, "timeline": samples[::10],
    }
    lines = [
        f"# Memory of one fit: {args.model}, {args.fit} fit{' (a refresh)' if args.refresh else ''} (benchmarks/fit_memory.py)\n",
        f"Data: {run.name}, {len(data.events):,} events, {len(data.user_ids):,} users, {len(data.item_ids):,} items.",
        f"Wall {wall:.0f} s ({loaded:.0f} s building the data); peak resident memory {peak:.2f} GiB.\n",
        "## The highest samples\n", "| s | GiB | running |", "| ---: | ---: | --- |",
        *(f"| {t} | {g} | {w} |" for t, g, w in top),
        "\n## Every tenth sample\n", "| s | GiB | running |", "| ---: | ---: | --- |",
        *(f"| {t} | {g} | {w} |" for t, g, w in samples[::10]),
    ]
    write_report(REPO / "reports" / "benchmarks" / f"fit_memory_{args.model}_{args.fit}.json", report, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
