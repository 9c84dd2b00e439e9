"""What a refit by refresh costs (train.refit): on a finished run, each model that folds in
events is scored on the test slice twice, as the pipeline's evaluation scores it:

- trained again: its test fit, trained on train + valid;
- refreshed: its valid fit (trained on train only) with every user's train + valid history
  folded in, the item side as the valid fit learned it.

The second is what a refresh publishes, one slice earlier: the gap between the two is what
freezing the item side for one slice of each user's events costs. Times: the test fit's
training against the refresh.

    .venv/bin/python benchmarks/refit_refresh.py --run /path/to/run [--name small] [--set KEY=VALUE ...]

--run is a folder holding a `recmill run`'s data/ and reports/ (paths.data and paths.reports);
--set adds the settings that run used besides those. Writes reports/benchmarks/refit_refresh_<name>.json and .md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from report import write_report

from recmill.fits import refreshed_fit, split_events
from recmill.io import Layout, read_json
from recmill.models import model_class
from recmill.runtime import offline_defaults
from recmill.scoring import score_buy_again, score_ranking
from recmill.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
SHOWN = {"ranking": ("ndcg@10", "recall@10"), "buy again": ("auc", "log_loss")}


def scores(settings, fitted) -> dict[str, float]:
    if fitted.predicts_reorders:
        return score_buy_again(settings, fitted, "test")[0]
    return score_ranking(settings, fitted, "test")["overall"]


def compare(settings, model: str) -> dict:
    layout = Layout(settings)
    trained_again = model_class(model).load(layout.model_dir(model, "test"))
    started = time.perf_counter()
    refreshed = refreshed_fit(settings, model, layout.model_dir(model, "valid"), fit="test")
    refresh_seconds = time.perf_counter() - started
    kind = "buy again" if trained_again.predicts_reorders else "ranking"
    again, fresh = scores(settings, trained_again), scores(settings, refreshed)
    return {
        "kind": kind,
        "trained_again": {m: round(again[m], 4) for m in SHOWN[kind]},
        "refreshed": {m: round(fresh[m], 4) for m in SHOWN[kind]},
        "fit_seconds": round(read_json(layout.tracking_file(model))["fit_seconds"]["test"], 2),
        "refresh_seconds": round(refresh_seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--name", help="the report's name (default: the run folder's)")
    parser.add_argument("--set", action="append", default=[], help="a setting of that run, KEY=VALUE")
    args = parser.parse_args()
    offline_defaults()
    run = args.run.resolve()
    settings = load_settings(REPO / "params.yaml", [f"paths.data={run / 'data'}", f"paths.reports={run / 'reports'}", *args.set])
    if settings.train.refreshes(split_events(settings)):
        parser.error("this run's test fits are refreshes themselves (train.refit): run it, and this, with --set train.refit=full")
    layout = Layout(settings)
    models = [
        m for m in settings.train.models
        if model_class(m).folds_in and all((layout.model_dir(m, fit) / "state.npz").exists() for fit in ("valid", "test"))
    ]
    results = {}
    for model in models:
        results[model] = compare(settings, model)
        print(model, results[model], flush=True)
    name = args.name or run.name
    lines = [
        f"# Refit by refresh on {name} (benchmarks/refit_refresh.py)",
        "",
        "Scored on the test slice: the test fit (trained again on train + valid) against the valid fit refreshed "
        "with every user's train + valid history, its item side frozen. Seconds: training the test fit (about 0 where "
        "two_stage's task trained it as a generator and the model's own task loaded it), refreshing the valid fit.",
        "",
        "| model | metric | trained again | refreshed | change | fit s | refresh s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for model, r in results.items():
        for metric in SHOWN[r["kind"]]:
            a, f = r["trained_again"][metric], r["refreshed"][metric]
            change = f"{100 * (f - a) / a:+.1f}%" if a else "n/a"
            lines.append(f"| {model} | {metric} | {a:.4f} | {f:.4f} | {change} | {r['fit_seconds']:.1f} | {r['refresh_seconds']:.1f} |")
    write_report(REPO / "reports" / "benchmarks" / f"refit_refresh_{name}.json", {"run": name, "models": results}, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
