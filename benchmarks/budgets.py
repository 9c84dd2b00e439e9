"""What each scale budget costs in quality: on a run of pipeline_scale.py (its split of the
instacart shop at one size), each budgeted model is fitted on the test fit's training data
with params.yaml's budget and with a looser one, and scored as the pipeline's evaluation
scores it: NDCG@10 and recall@10 on the test slice's items the user did not have.

    .venv/bin/python benchmarks/budgets.py --run data/bench/4m [--cases ncf.pairs_per_epoch,mf.pairs_per_epoch]

A budget only costs something where the data passes it: at about 1M order lines only
ncf's bind; at 4M, mf's pairs, item2vec's words and two_stage's users do too.
Writes reports/benchmarks/budgets_<run>.json and .md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from report import write_report

from recmill.data.split import items_by_user, relevant_items
from recmill.evaluation.holdout import sample_users, score_model
from recmill.fits import fit_data
from recmill.io import Layout, read_frame
from recmill.models import build_model
from recmill.runtime import offline_defaults
from recmill.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
# case -> (model, the looser setting): each against params.yaml's own
CASES = {
    "ncf.pairs_per_epoch": ("ncf", "models.ncf.pairs_per_epoch=400000"),
    "ncf.sparse_above_rows": ("ncf", "models.ncf.sparse_above_rows=1000000"),
    "ncf.valid_items": ("ncf", "models.ncf.valid_items=null"),
    "ncf.score_max_items": ("ncf", "models.ncf.score_max_items=null"),
    "mf.pairs_per_epoch": ("mf", "models.mf.pairs_per_epoch=null"),
    "item2vec.max_tokens": ("item2vec", "models.item2vec.max_tokens=null"),
    "two_stage.max_train_users": ("two_stage", "models.two_stage.max_train_users=null"),
    "two_stage.stage1_negatives": ("two_stage", "models.two_stage.stage1_negatives=1.0"),
}


def scored(run: Path, overrides: list[str], model: str) -> dict:
    paths = [f"paths.data={run / 'data'}", f"paths.reports={run / 'reports'}"]
    settings = load_settings(REPO / "params.yaml", [*paths, *overrides])
    data = fit_data(settings, "test")
    started = time.perf_counter()
    fitted = build_model(model, settings).fit(data)
    seconds = time.perf_counter() - started
    positive = settings.interactions.positive_event_types
    held_out = read_frame(Layout(settings).splits / "test.parquet")
    truth = relevant_items(held_out, positive, items_by_user(data.events, positive))
    truth = {u: truth[u] for u in sample_users(truth, settings.evaluate.max_users, settings.seed)}
    figures = {f"{r['metric']}@{r['k']}": round(r["value"], 4) for r in score_model(fitted, truth, ["ndcg", "recall"], [10])}
    return {**figures, "fit_seconds": round(seconds, 1), "users": len(truth)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a pipeline_scale.py size folder (data/bench/4m)")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated, of " + ", ".join(CASES))
    args = parser.parse_args()
    offline_defaults()
    run = args.run.resolve()
    results, defaults = {}, {}
    for case in args.cases.split(","):
        model, looser = CASES[case]
        if model not in defaults:
            defaults[model] = scored(run, [], model)
            print(f"{model} with params.yaml's budgets: {defaults[model]}", flush=True)
        results[case] = {"model": model, "looser": looser, "budget": defaults[model], "looser_figures": scored(run, [looser], model)}
        print(f"{case} ({looser}): {results[case]['looser_figures']}", flush=True)
    lines = [
        f"# What the scale budgets cost on {run.name} (benchmarks/budgets.py)",
        "",
        "Each model fitted on the test fit's training data, scored on the test slice (NDCG@10, recall@10), "
        "with params.yaml's budgets and with one budget loosened.",
        "",
        "| budget | loosened to | NDCG@10 budget / loosened | recall@10 budget / loosened | fit s budget / loosened |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for case, r in results.items():
        b, lo = r["budget"], r["looser_figures"]
        lines.append(f"| {case} | `{r['looser'].split('=', 1)[1]}` | {b['ndcg@10']:.4f} / {lo['ndcg@10']:.4f} | "
                     f"{b['recall@10']:.4f} / {lo['recall@10']:.4f} | {b['fit_seconds']:.0f} / {lo['fit_seconds']:.0f} |")
    out = REPO / "reports" / "benchmarks" / f"budgets_{run.name}.json"
    write_report(out, {"run": run.name, "cases": results}, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
