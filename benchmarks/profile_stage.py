"""Where one stage spends its time: py-spy samples `python -m pipelines STAGE [--model M]`
on a run's data (one made by pipeline_scale.py, say) and the stacks are summed per
function: the share of samples in which each function is on the stack (cumulative) and
at its top (self).

    .venv/bin/python benchmarks/profile_stage.py train --model two_stage --run data/bench/1m [--set KEY=VALUE] [--top 40]

Writes reports/benchmarks/profile_<stage>[_<model>].txt (and the raw stacks beside it).
A recording made apart (py-spy record --subprocesses --format raw on a whole `recmill run`)
is summarised for the samples whose stacks hold every --within function:

    .venv/bin/python benchmarks/profile_stage.py --stacks run.stacks --within "run (train.py)" --within TwoStageRecommender._fit --name train_two_stage
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import Counter
from pathlib import Path

from report import folder_settings

REPO = Path(__file__).resolve().parents[1]


def frame_name(frame: str) -> str:
    """'func (path/to/module.py:12)' -> 'func (module.py)'."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.split(':')[0].rsplit('/', 1)[-1]})" if where else name


def summarise(raw: Path, top: int, within: list[str] = ()) -> tuple[int, list[tuple[str, float, float]]]:
    cumulative, own, total = Counter(), Counter(), 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [frame_name(f) for f in stack.split(";")]
        if not all(any(f.startswith(w) for f in frames) for w in within):
            continue
        n = int(count)
        total += n
        for name in set(frames):
            cumulative[name] += n
        own[frames[-1]] += n
    rows = [(name, cumulative[name] / total, own[name] / total) for name, _ in cumulative.most_common(top)]
    return total, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", nargs="?")
    parser.add_argument("--model")
    parser.add_argument("--run", type=Path, help="the folder of a pipeline_scale.py size (data/, reports/, mlflow.db)")
    parser.add_argument("--stacks", type=Path, help="summarise this raw py-spy recording instead of running a stage")
    parser.add_argument("--within", action="append", default=[], help="with --stacks: only samples with this function on the stack")
    parser.add_argument("--name", help="with --stacks: the report is profile_<name>.txt")
    parser.add_argument("--preset", default=None, help="data.preset of that run (only the stages that ingest need it)")
    parser.add_argument("--set", action="append", default=[], help="more settings of that run (train.models=[...] when it trained a few)")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--rate", type=int, default=20, help="samples per second")
    args = parser.parse_args()
    if args.stacks:
        total, rows = summarise(args.stacks, args.top, args.within)
        write(REPO / "reports" / "benchmarks" / f"profile_{args.name}.txt", f"py-spy, {total} samples of {args.stacks.name} within {' and '.join(args.within) or 'all'}", rows)
        return
    if not (args.stage and args.run):
        parser.error("a stage and --run, or --stacks")
    run = args.run.resolve()
    name = args.stage + (f"_{args.model}" if args.model else "")
    out = REPO / "reports" / "benchmarks" / f"profile_{name}.txt"
    raw = out.with_suffix(".stacks")
    overrides = folder_settings(run)
    if args.preset:
        overrides.append(f"data.preset={args.preset}")
    overrides += args.set
    command = [sys.executable, "-m", "pipelines", args.stage, *(["--model", args.model] if args.model else []),
               *(a for o in overrides for a in ("--set", o))]
    py_spy = Path(sys.executable).with_name("py-spy")
    subprocess.run([str(py_spy), "record", "--format", "raw", "--rate", str(args.rate), "--output", str(raw), "--", *command],
                   cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    total, rows = summarise(raw, args.top)
    write(out, f"py-spy, {args.rate} samples/s, {total} samples: {' '.join(command[1:4])} on {run.name}", rows)


def write(out: Path, title: str, rows: list[tuple[str, float, float]]) -> None:
    lines = [title, f"{'cumulative':>10} {'self':>6}  function (module)"]
    lines += [f"{c:10.1%} {s:6.1%}  {fn}" for fn, c, s in rows]
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
