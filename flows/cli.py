"""The `recmill` command."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from recmill import schema as S
from recmill.config import DEFAULT_PARAMS
from recmill.errors import RecmillError
from recmill.runtime import DEBUG_ENV, offline_defaults, stop_on_signals
from recmill.settings import load_settings

app = typer.Typer(help="recmill: a batch recommendation pipeline.", no_args_is_help=True, add_completion=False)
console = Console()
errors = Console(stderr=True)
SUMMARY_METRICS = ("precision", "recall", "ndcg", "map", "coverage")
BUY_AGAIN_METRICS = {  # metric -> column title
    "auc": "AUC", "log_loss": "log loss", "basket_f1": "F1",
    "basket_f1_repeat_last_basket": "F1 last basket", "basket_f1_top_frequent": "F1 top items",
}


@app.callback()
def main(debug: bool = typer.Option(False, "--debug", help="show the traceback of an error in the input or settings")) -> None:
    offline_defaults()
    stop_on_signals()
    if debug:
        os.environ[DEBUG_ENV] = "1"


def _fail(exc: Exception) -> None:
    """Bad input or settings: one paragraph and exit 1 (with --debug, the traceback first)."""
    if os.environ.get(DEBUG_ENV):
        errors.print_exception()
    errors.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def print_summary(result: dict, warehouse_path: Path, summary_k: int) -> None:
    from recmill import warehouse

    console.print(f"\n[bold]Warehouse:[/] {warehouse_path.resolve()}")
    if result.get("dashboard"):
        console.print(f"[bold]Dashboard:[/] {Path(result['dashboard']).resolve()}")
    console.print(f"[bold]Run:[/] {result['run_id']}   [bold]challenger:[/] {result['chosen']}   [bold]decision:[/] {result['decision']}")
    for reason in result["reasons"]:
        console.print(f"  - {reason}", highlight=False, soft_wrap=True)
    console.print(f"[bold]Champion (publishes recommendations):[/] {result['champion']}")
    console.print(f"[bold]Data drift:[/] {result['drift']}", highlight=False, soft_wrap=True)
    metrics = warehouse.query(
        warehouse_path,
        "SELECT model, split, metric, k, value FROM model_metrics WHERE run_id = ? AND k = ? AND slice = 'all'",
        [result["run_id"], summary_k],
    )
    table = Table(title=f"Holdout metrics @{summary_k} (valid chooses, test reports)")
    table.add_column("model")
    table.add_column("split")
    shown = [m for m in SUMMARY_METRICS if m in set(metrics["metric"])]
    for name in shown:
        table.add_column(name, justify="right")
    wide = metrics.pivot_table(index=["model", "split"], columns="metric", values="value").reset_index()
    for _, row in wide.sort_values(["split", "model"], ascending=[False, True]).iterrows():
        table.add_row(row["model"], row["split"], *(f"{row[m]:.4f}" for m in shown))
    console.print(table)
    buy_again = warehouse.query(
        warehouse_path,
        f"SELECT model, metric, value FROM model_metrics WHERE run_id = ? AND split = 'test' AND slice = 'all' "
        f"AND metric IN ({', '.join('?' * len(BUY_AGAIN_METRICS))})",
        [result["run_id"], *BUY_AGAIN_METRICS],
    )
    if len(buy_again):
        table = Table(title="Buy again: the next order on test (F1 beside the baselines)")
        table.add_column("model")
        for title in BUY_AGAIN_METRICS.values():
            table.add_column(title, justify="right")
        for model, rows in buy_again.groupby("model"):
            values = rows.set_index("metric")["value"]
            table.add_row(model, *(f"{values.get(m, float('nan')):.4f}" for m in BUY_AGAIN_METRICS))
        console.print(table)
    print_stage_times(result.get("stages", {}))
    counts = Table(title="Published tables")
    counts.add_column("table")
    counts.add_column("rows", justify="right")
    for name, n in result["row_counts"].items():
        counts.add_row(name, f"{n:,}")
    console.print(counts)
    user = warehouse.query(warehouse_path, "SELECT min(user_id) AS u FROM recommendations")["u"].item()
    console.print("Query it:", highlight=False)
    console.print(
        f'  .venv/bin/duckdb {warehouse_path} "select rank, item_id, reason from recommendations where user_id = \'{user}\' order by rank"',
        highlight=False,
        soft_wrap=True,
    )


def print_stage_times(stages: dict[str, dict]) -> None:
    if not stages:
        return
    table = Table(title=f"Stages, {sum(s['wall_s'] for s in stages.values()):.0f} s")
    for column in ("stage", "seconds", "CPU seconds", "peak GiB"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for name, s in stages.items():
        label = f"{name} (reused)" if s.get("status") == "reused" else name
        table.add_row(label, f"{s['wall_s']:.1f}", f"{s['cpu_s']:.1f}", f"{s['peak_rss_gib']:.2f}")
    console.print(table)
    reused = [name for name, s in stages.items() if s.get("status") == "reused"]
    if reused:
        console.print(f"Resumed: {len(reused)} stages finished by the interrupted attempt were reused, their figures from then.", highlight=False)


@app.command()
def run(
    config: Path = typer.Option(DEFAULT_PARAMS, "--config", "-c", help="params file"),
    overrides: list[str] = typer.Option([], "--set", "-s", help="override a dotted key: --set data.source=movielens"),
) -> None:
    """Run the weekly retrain once: ingest, validate, train, evaluate, choose, publish."""
    try:
        settings = load_settings(config, overrides)  # a bad key fails here, before Prefect starts
        from flows.retrain import weekly_retrain

        result = weekly_retrain(config=str(config), overrides=list(overrides))
    except RecmillError as exc:
        _fail(exc)
    except KeyboardInterrupt as exc:
        errors.print(f"[bold red]stopped:[/] {exc or 'interrupted'}; `recmill run` again resumes the run", highlight=False)
        raise typer.Exit(130) from None
    if not result["published"]:
        console.print(f"[bold]Run:[/] {result['run_id']}   [bold]challenger:[/] {result['chosen']}   [bold]decision:[/] {result['decision']}")
        console.print(f"Not published: {result['why']}", highlight=False)
        print_stage_times(result.get("stages", {}))
        return
    print_summary(result, settings.publish.warehouse, settings.evaluate.selection_k)


@app.command()
def schedule(
    config: Path = typer.Option(DEFAULT_PARAMS, "--config", "-c", help="params file every scheduled run reads"),
    overrides: list[str] = typer.Option([], "--set", "-s", help="override a dotted key in every scheduled run"),
) -> None:
    """Serve weekly_retrain as the Prefect deployment of params.yaml's schedule section (cron,
    time zone, one run at a time), and the refresh flow on refresh.cron, and run their flow
    runs here until stopped (Ctrl-C). Needs a Prefect server: PREFECT_API_URL."""
    try:
        load_settings(config, overrides)
        from flows.deploy import serve_deployments

        serve_deployments(config, list(overrides))
    except RecmillError as exc:
        _fail(exc)


@app.command()
def explain(
    user: str = typer.Argument(..., help="user id"),
    item: str = typer.Argument(..., help="item id"),
    model: str = typer.Option("mf", "--model", "-m", help="a model that explains its scores"),
    config: Path = typer.Option(DEFAULT_PARAMS, "--config", "-c", help="params file"),
    overrides: list[str] = typer.Option([], "--set", "-s", help="override a dotted key"),
) -> None:
    """Why USER would get ITEM: the history items and attributes behind the score."""
    from recmill.io import Layout
    from recmill.models import MODEL_NAMES, model_class

    try:
        settings = load_settings(config, overrides)
        if model not in MODEL_NAMES or not model_class(model).has_explanations:
            explainers = [m for m in MODEL_NAMES if model_class(m).has_explanations]
            raise RecmillError(f"model '{model}' does not explain its scores; models that do: {', '.join(explainers)}")
        path = Layout(settings).model_dir(model, "full")
        if not (path / "config.json").exists():
            raise RecmillError(f"no published '{model}' model at {path}: run `recmill run` with {model} in train.models first")
        explainer = model_class(model).load(path)
        why = explainer.explain(user, item)
    except RecmillError as exc:
        _fail(exc)
    name = explainer.item_names_[list(explainer.item_ids_).index(why[S.ITEM_ID])]
    console.print(f"user {why['user_id']}, item {why['item_id']} ({name}), by the {model} model", highlight=False)
    console.print(f"[bold]{why['reason']}[/]", highlight=False)
    parts = why["parts"]
    console.print(
        f"score {why['score']:.3f} = global mean {parts['global_mean']:.3f} + user bias {parts['user_bias']:+.3f}"
        f" + item bias {parts['item_bias']:+.3f} + taste match {parts['interaction']:+.3f}",
        highlight=False,
    )
    if why["history"]:
        table = Table(title="History items that contribute most")
        for column in (S.ITEM_ID, "name", "contribution"):
            table.add_column(column, justify="right" if column == "contribution" else "left")
        for h in why["history"]:
            table.add_row(h[S.ITEM_ID], h["name"], f"{h['contribution']:+.3f}")
        console.print(table)
    for match in why["attributes"]:
        console.print(f"same {match['attribute']} '{match['value']}' as {match['history_items']} items in the history", highlight=False)


def print_rows(rows, as_json: bool, title: str) -> None:
    """A frame as a table on the terminal, or as JSON records for machines."""
    from recmill.reading import as_text

    if as_json:
        typer.echo(rows.to_json(orient="records", date_format="iso"))
        return
    table = Table(title=title)
    for column in rows.columns:
        table.add_column(str(column), justify="right" if rows[column].dtype.kind in "iuf" else "left")
    for record in rows.itertuples(index=False):
        table.add_row(*(as_text(v) for v in record))
    console.print(table)


ConfigOption = typer.Option(DEFAULT_PARAMS, "--config", "-c", help="params file")
OverrideOption = typer.Option([], "--set", "-s", help="override a dotted key")
JsonOption = typer.Option(False, "--json", help="print the rows as JSON records")


def _read(read, config: Path, overrides: list[str], *args):
    """read(warehouse path, *args) on the settings' warehouse; bad input exits with one paragraph."""
    try:
        return read(load_settings(config, overrides).publish.warehouse, *args)
    except RecmillError as exc:
        _fail(exc)


@app.command()
def refresh(config: Path = ConfigOption, overrides: list[str] = OverrideOption) -> None:
    """Fold the events that arrived since the last publish (refresh.increments) into their
    users' recommendations and buy-again lists, and republish only those users' rows."""
    try:
        load_settings(config, overrides)  # a bad key fails here, before Prefect starts
        from flows.refresh import refresh as refresh_flow

        result = refresh_flow(config=str(config), overrides=list(overrides))
    except RecmillError as exc:
        _fail(exc)
    seconds = result["figures"]["wall_s"]
    if not result["run_id"]:
        console.print(f"Nothing refreshed: {result['why']} ({seconds:.1f} s).", highlight=False)
        return
    tables = " and ".join(result["tables"])
    console.print(
        f"[bold]Refresh:[/] {result['run_id']}   {result['events']:,} new events of {result['users']:,} users folded into "
        f"{result['champion']}; their rows of {tables} republished in {seconds:.1f} s.", highlight=False,
    )
    console.print(f"Query it:\n  .venv/bin/recmill recommend {result['first_user']}", highlight=False)


@app.command()
def query(
    sql: str = typer.Argument(..., help="one SQL statement, e.g. \"SELECT * FROM recommendations WHERE user_id = 'u1'\""),
    as_json: bool = JsonOption, config: Path = ConfigOption, overrides: list[str] = OverrideOption,
) -> None:
    """Run SQL on the warehouse, read-only: every table can be read, nothing can be changed."""
    import duckdb

    from recmill import reading, warehouse

    def run_sql(path: Path, sql: str):
        try:
            return warehouse.query(reading.published(path), sql)
        except duckdb.Error as exc:
            raise RecmillError(f"the query failed (the warehouse is read-only here): {exc}") from None

    rows = _read(run_sql, config, overrides, sql)
    print_rows(rows, as_json, f"{len(rows):,} rows")


@app.command()
def recommend(
    user: str = typer.Argument(..., help="a user id as in the data"),
    k: int = typer.Option(10, "--k", min=1, help="how many"),
    as_json: bool = JsonOption, config: Path = ConfigOption, overrides: list[str] = OverrideOption,
) -> None:
    """A user's published recommendations, best first, with item names and reasons."""
    from recmill import reading

    print_rows(_read(reading.recommendations, config, overrides, user, k), as_json, f"Recommendations for {user}")


@app.command()
def similar(
    item: str = typer.Argument(..., help="an item id as in the catalogue"),
    k: int = typer.Option(10, "--k", min=1, help="how many per model"),
    model: str = typer.Option(None, "--model", help="only this model's neighbours"),
    as_json: bool = JsonOption, config: Path = ConfigOption, overrides: list[str] = OverrideOption,
) -> None:
    """The items published as most similar to ITEM by each model that publishes neighbours,
    with their names."""
    from recmill import reading

    print_rows(_read(reading.similar, config, overrides, item, k, model), as_json, f"Similar to {item}")


@app.command()
def segments(as_json: bool = JsonOption, config: Path = ConfigOption, overrides: list[str] = OverrideOption) -> None:
    """The user segments of the last run (RFM clusters), largest first."""
    from recmill import reading

    print_rows(_read(reading.segments, config, overrides), as_json, "User segments")


@app.command()
def status(
    last: int = typer.Option(5, "--last", min=1, help="how many runs"),
    as_json: bool = JsonOption, config: Path = ConfigOption, overrides: list[str] = OverrideOption,
) -> None:
    """The last runs (status, minutes, data fingerprint, gate decision, drift flags) and the
    champion with its test figures."""
    from recmill import reading

    try:
        settings = load_settings(config, overrides)
        path = settings.publish.warehouse
        runs = reading.runs(path, last)
        champion = reading.champion(path, settings.evaluate.selection_metric, settings.evaluate.selection_k)
    except RecmillError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps({"runs": json.loads(runs.to_json(orient="records", date_format="iso")),
                               "champion": json.loads(champion.to_json(orient="records"))}))
        return
    print_rows(runs, False, f"The last {len(runs)} runs, newest first")
    print_rows(champion, False, "Champion (publishes recommendations), test figures of its run")


models_app = typer.Typer(help="Registered model versions: the champion publishes `recommendations`.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list(config: Path = ConfigOption, overrides: list[str] = OverrideOption, archived: bool = typer.Option(False, help="show archived versions too")) -> None:
    """Every registered version, newest first, with its aliases and figures."""
    from recmill.registry import Registry

    try:
        versions = Registry(load_settings(config, overrides).tracking).versions()
    except RecmillError as exc:
        _fail(exc)
    table = Table(title="Model versions of 'recmill', newest first (each one's metric on the valid and test slices of its run)")
    for column in ("version", "model", "semver", "aliases", "metric", "valid", "test"):
        table.add_column(column, justify="right" if column in ("version", "valid", "test") else "left", no_wrap=column == "aliases")
    for v in versions:
        if v.archived and not archived:
            continue
        table.add_row(
            v.version, v.model, v.semver, ", ".join(v.aliases + (("archived",) if v.archived else ())), v.metric,
            "" if v.valid_value is None else f"{v.valid_value:.4f}", "" if v.test_value is None else f"{v.test_value:.4f}",
        )
    console.print(table)


@models_app.command("activate")
def models_activate(version: str = typer.Argument(..., help="registry version number"), config: Path = ConfigOption, overrides: list[str] = OverrideOption) -> None:
    """Make VERSION the champion and republish `recommendations` from it."""
    from recmill.champion import activate

    try:
        result = activate(load_settings(config, overrides), version, "activate")
    except RecmillError as exc:
        _fail(exc)
    console.print(f"champion: {result['champion']} (was {result['previous']}); recommendations: {result['row_counts']['recommendations']:,} rows", highlight=False)


@models_app.command("rollback")
def models_rollback(config: Path = ConfigOption, overrides: list[str] = OverrideOption) -> None:
    """Give the champion back to the version it replaced, and republish from it."""
    from recmill.champion import rollback

    try:
        result = rollback(load_settings(config, overrides))
    except RecmillError as exc:
        _fail(exc)
    console.print(f"champion: {result['champion']} (was {result['previous']}); recommendations: {result['row_counts']['recommendations']:,} rows", highlight=False)


if __name__ == "__main__":
    app()
