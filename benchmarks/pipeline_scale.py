"""The whole weekly retrain at growing sizes of the synthetic shop, stage by stage.

Each size is the instacart shop with a share of its users: about 1M, 4M and 16M order
lines, then the full preset (32M order lines, 40M events). Each size is one `recmill run`,
as a user starts it (the Prefect flow, every model of params.yaml), one size at a time.
The flow measures each stage from the process's own accounting (wall time, CPU time of
all its threads, peak resident memory, reset at the start of each stage) and writes it to
reports/stages.json as each stage ends; rows per second is the size's events over the
stage's wall time. The whole command's wall time includes starting Prefect. A run that
passes --memory-cap is stopped (the machine has 24 GiB and a runaway process can take
others down), and what its finished stages measured is kept. The growth exponent of each
stage is the slope of log(wall time) over log(events), least squares over the sizes where
it ran.

    .venv/bin/python benchmarks/pipeline_scale.py [--sizes 1m,4m,16m,32m] [--models als,popularity]

Writes reports/benchmarks/pipeline_scale.json, .md and .png.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from report import folder_settings, write_report

REPO = Path(__file__).resolve().parents[1]
GIB = 2**30
PRESETS = {"1m": "instacart_1m", "4m": "instacart_4m", "16m": "instacart_16m", "32m": "instacart"}
TARGET_WALL_S = 20 * 60
TARGET_PEAK_GIB = 12.0
# what the retrain runs: sizes measured at commits that differ elsewhere (docs, benchmarks) compare alike
CODE_PATHS = ("recmill", "pipelines", "flows", "params.yaml", "pyproject.toml")


def machine() -> dict:
    meminfo = Path("/proc/meminfo").read_text().split()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    # changes to the code only: the benchmark's own reports change between its runs
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS], cwd=REPO,
                           capture_output=True, text=True).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(int(meminfo[meminfo.index("MemTotal:") + 1]) * 1024 / GIB, 1),
        "python": platform.python_version(),
        "commit": commit + ("+changes" if dirty else ""),
    }


def code_version(commit: str) -> str:
    """The git objects of CODE_PATHS at a commit, as one short hash; the commit itself when
    git does not know it or it had uncommitted changes."""
    if commit.endswith("+changes"):
        return commit
    found = subprocess.run(["git", "rev-parse", *(f"{commit}:{p}" for p in CODE_PATHS)], cwd=REPO, capture_output=True, text=True)
    return hashlib.sha256(found.stdout.encode()).hexdigest()[:10] if found.returncode == 0 else commit


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and its children, from /proc (0 once it is gone)."""
    total = 0
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        total = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return total
    return total + sum(rss_bytes(int(c)) for c in children)


def run_command(args: list[str], log, memory_cap: float, timeout: float) -> dict:
    """Run one command; its wall and CPU seconds, peak RSS (the kernel's accounting of the
    process; and of the process with its children, the workers included, sampled every half
    second) and how it ended."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    stopped: list[str] = []
    done = threading.Event()
    tree_peak = [0]

    def watch() -> None:  # stop a process that would take the machine down, or never ends
        while not done.wait(0.5):
            tree_peak[0] = max(tree_peak[0], rss_bytes(proc.pid))
            if tree_peak[0] > memory_cap * GIB:
                stopped.append(f"stopped above {memory_cap:g} GiB")
            elif time.perf_counter() - started > timeout:
                stopped.append(f"stopped after {timeout:g} s")
            if stopped:
                os.kill(proc.pid, signal.SIGKILL)
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _, status, usage = os.wait4(proc.pid, 0)  # the kernel's accounting of this one process
    done.set()
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    watcher.join()
    return {
        "wall_s": round(time.perf_counter() - started, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_gib": round(usage.ru_maxrss * 1024 / GIB, 3),
        "peak_tree_gib": round(tree_peak[0] / GIB, 3),
        "status": "ok" if code == 0 else (stopped[0] if stopped else f"failed (exit {code})" if code > 0 else f"killed (signal {-code})"),
    }


def reference_seconds(repeats: int = 5) -> float:
    """Seconds of a fixed single-core workload (a numpy sort and a Python loop), the median
    of a few, taken before each size: the same machine runs slower on some days, and this
    says by how much."""
    import numpy as np

    def once() -> float:
        started = time.perf_counter()
        np.sort(np.random.default_rng(0).random(10_000_000))
        total = 0
        for i in range(5_000_000):
            total += i % 7
        return time.perf_counter() - started

    return round(statistics.median(once() for _ in range(repeats)), 2)


def run_size(size: str, models: list[str], work: Path, memory_cap: float, timeout: float) -> dict:
    reference = reference_seconds()
    folder = work / size
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    overrides = [f"data.preset={PRESETS.get(size, size)}", *folder_settings(folder), f"train.models=[{', '.join(models)}]"]
    print(f"[{size}] recmill run ...", flush=True)
    with open(folder / "run.log", "w") as log:
        command = run_command([str(Path(sys.executable).with_name("recmill")), "run", *(a for o in overrides for a in ("--set", o))], log, memory_cap, timeout)
    result = {"preset": PRESETS.get(size, size), "command": command, "stages": [], "reference_s": reference}
    info = folder / "data" / "canonical" / "run.json"
    if info.exists():
        result.update(json.loads(info.read_text())["rows"])
    report = folder / "reports" / "stages.json"
    for figures in json.loads(report.read_text()) if report.exists() else []:
        if figures["status"] == "running":  # the stage it was in when it was stopped
            figures["status"] = command["status"]
        if result.get("events") and "wall_s" in figures:
            figures["rows_per_s"] = round(result["events"] / max(figures["wall_s"], 1e-9))
        result["stages"].append(figures)
    result["complete"] = command["status"] == "ok"
    result["total_wall_s"] = command["wall_s"]
    result["peak_rss_gib"] = max([command["peak_rss_gib"], command["peak_tree_gib"]] + [s.get("peak_rss_gib", 0) for s in result["stages"]])
    print(f"[{size}] {command['wall_s']:.0f} s, {result['peak_rss_gib']:.2f} GiB, {command['status']}", flush=True)
    for s in result["stages"]:
        print(f"[{size}]   {s['stage']}: {s.get('wall_s', 0):.1f} s, {s.get('peak_rss_gib', 0):.2f} GiB, {s['status']}", flush=True)
    return result


def exponents(sizes: dict) -> dict[str, float]:
    """Slope of log(wall) over log(events) per stage (and 'total' over complete runs)."""
    points: dict[str, list[tuple[float, float]]] = {}
    for run in sizes.values():
        if not run.get("events"):
            continue
        for s in run["stages"]:
            if s["status"] == "ok" and s["wall_s"] > 0:
                points.setdefault(s["stage"], []).append((math.log(run["events"]), math.log(s["wall_s"])))
        if run["complete"]:
            points.setdefault("total", []).append((math.log(run["events"]), math.log(run["total_wall_s"])))
    out = {}
    for stage, xy in points.items():
        if len(xy) >= 2:
            mx, my = sum(x for x, _ in xy) / len(xy), sum(y for _, y in xy) / len(xy)
            sxx = sum((x - mx) ** 2 for x, _ in xy)
            out[stage] = round(sum((x - mx) * (y - my) for x, y in xy) / sxx, 2) if sxx else float("nan")
    return out


def markdown(report: dict) -> str:
    sizes = report["sizes"]
    m = report["machine"]
    lines = [
        "# The weekly retrain at growing sizes (benchmarks/pipeline_scale.py)",
        "",
        f"Machine: {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}. "
        "Each size is one `recmill run`; the machine reference is a fixed single-core workload timed just before it (the same "
        "machine runs slower on some days); per stage: wall s / peak resident GiB of the process that ran it (per-model "
        "stages run side by side where train.workers allows, so their times overlap); the total is the whole command, "
        "Prefect's start included, and its peak memory is the whole process tree's (workers and Prefect's server included).",
        "",
        "| size | events | users | items | complete | total wall | peak memory | commit | measured | machine reference |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | --- | --- | ---: |",
    ]
    for size, run in sizes.items():
        reference = f"{run['reference_s']:.2f} s" if "reference_s" in run else ""
        lines.append(
            f"| {size} | {run.get('events', 0):,} | {run.get('users', 0):,} | {run.get('items', 0):,} | "
            f"{'yes' if run['complete'] else 'no'} | {run['total_wall_s']:.0f} s | {run['peak_rss_gib']:.2f} GiB | "
            f"{run.get('commit', '')} | {run.get('measured', '')} | {reference} |"
        )
    stages = list(dict.fromkeys(s["stage"] for run in sizes.values() for s in run["stages"]))
    lines += ["", "| stage | " + " | ".join(sizes) + " | exponent |", "| --- |" + " ---: |" * (len(sizes) + 1)]
    for stage in stages:
        cells = []
        for run in sizes.values():
            found = next((s for s in run["stages"] if s["stage"] == stage), None)
            if found is None:
                cells.append("")
            elif found["status"] != "ok":
                cells.append(found["status"])
            else:
                cells.append(f"{found['wall_s']:.1f} s / {found['peak_rss_gib']:.2f} GiB")
        lines.append(f"| {stage} | " + " | ".join(cells) + f" | {report['exponents'].get(stage, '')} |")
    lines.append("| total | " + " | ".join(f"{r['total_wall_s']:.0f} s" for r in sizes.values()) + f" | {report['exponents'].get('total', '')} |")
    commits = sorted({run.get("commit", "") for run in sizes.values()})
    if len({code_version(c) for c in commits}) > 1:
        lines += ["", f"The sizes were measured at commits whose code differs ({', '.join(commits)}): the exponents mix code changes with growth."]
    elif len(commits) > 1:
        lines += ["", f"The sizes were measured at commits {', '.join(commits)}, whose {', '.join(CODE_PATHS)} are the same."]
    if "32m" in sizes:
        full = sizes["32m"]
        targets = (
            f"the whole retrain in {TARGET_WALL_S // 60} min or less "
            f"({'met' if full['complete'] and full['total_wall_s'] <= TARGET_WALL_S else 'not met'}: {full['total_wall_s']:.0f} s"
            f"{'' if full['complete'] else ', incomplete'}), peak memory {TARGET_PEAK_GIB:g} GiB or less "
            f"({'met' if full['peak_rss_gib'] <= TARGET_PEAK_GIB else 'not met'}: {full['peak_rss_gib']:.2f} GiB)."
        )
    else:
        targets = f"not measured at that size (the largest measured is {list(sizes)[-1]})."
    lines += [
        "",
        f"Targets, for the instacart preset (32m): {targets}",
        "",
        "![time and memory against size](pipeline_scale.png)",
        "",
    ]
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_time, ax_mem) = plt.subplots(1, 2, figsize=(13, 5))
    runs = [r for r in report["sizes"].values() if r.get("events")]
    stages = list(dict.fromkeys(s["stage"] for r in runs for s in r["stages"]))
    for stage in stages:
        xs, wall, mem = [], [], []
        for r in runs:
            found = next((s for s in r["stages"] if s["stage"] == stage and s["status"] == "ok"), None)
            if found:
                xs.append(r["events"])
                wall.append(found["wall_s"])
                mem.append(found["peak_rss_gib"])
        if xs:
            ax_time.plot(xs, wall, marker="o", label=stage)
            ax_mem.plot(xs, mem, marker="o", label=stage)
    for ax, title, unit in ((ax_time, "wall time per stage", "seconds"), (ax_mem, "peak resident memory per stage", "GiB")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("events")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    ax_mem.axhline(TARGET_PEAK_GIB, color="red", linestyle="--", linewidth=1)
    ax_time.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1m,4m,16m,32m", help="comma-separated, of " + ", ".join(PRESETS) + " (or any data.preset)")
    parser.add_argument("--models", default=None, help="comma-separated models (default: params.yaml's train.models)")
    parser.add_argument("--work", type=Path, default=REPO / "data" / "bench", help="where each size's run lives")
    parser.add_argument("--memory-cap", type=float, default=20.0, help="GiB: a stage above it is stopped")
    parser.add_argument("--timeout", type=float, default=4 * 3600.0, help="seconds: a run taking longer is stopped")
    # sizes already in --out and not measured again are kept
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "benchmarks" / "pipeline_scale.json")
    parser.add_argument("--rewrite", action="store_true", help="only write the table and plot again from the JSON")
    args = parser.parse_args()
    if args.rewrite:
        report = json.loads(args.out.read_text())
        write_report(args.out, report, markdown(report))
        plot(report, args.out.with_suffix(".png"))
        return
    sys.path.insert(0, str(REPO))
    from recmill.settings import load_settings

    models = args.models.split(",") if args.models else load_settings(REPO / "params.yaml").train.models
    report = {"machine": machine(), "models": models, "sizes": {}}
    if args.out.exists():  # sizes measured before stay, each with its own commit and date
        report["sizes"] = json.loads(args.out.read_text()).get("sizes", {})
    for size in args.sizes.split(","):
        report["sizes"][size] = {
            **run_size(size, models, args.work, args.memory_cap, args.timeout),
            "commit": report["machine"]["commit"], "measured": time.strftime("%Y-%m-%d %H:%M"),
        }
        report["sizes"] = {k: report["sizes"][k] for k in sorted(report["sizes"], key=lambda k: report["sizes"][k].get("events", 0))}
        report["exponents"] = exponents(report["sizes"])
        write_report(args.out, report, markdown(report))  # after every size: a long run keeps what it measured
        plot(report, args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
