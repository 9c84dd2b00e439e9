"""The run dashboard: reports/runs/<run_id>/index.html for every published run, and
reports/index.html listing them. Self-contained pages that open from the file system:
plotly's JavaScript is embedded once per page, nothing is fetched.

``gather`` reads what a run left (the warehouse, the stage and drift reports, ncf's
training history); ``run_page`` and ``index_page`` turn it into HTML and touch nothing."""

from __future__ import annotations

import html
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from recmill import warehouse
from recmill.config import Settings
from recmill.io import Layout
from recmill.reading import as_text

SAMPLE_USERS = 5
SUMMARY_METRICS = ("precision", "recall", "ndcg", "map", "coverage")
BUY_AGAIN_METRICS = ("auc", "log_loss", "basket_f1", "basket_f1_repeat_last_basket", "basket_f1_top_frequent")
SECTIONS = {  # id -> heading, in page order
    "metrics": "Metrics by model", "gate": "Champion and challenger", "history": "Metric history",
    "drift": "Drift", "validation": "Validation", "segments": "Segments", "buy-again": "Buy again",
    "samples": "Sample users", "stages": "Stage timings", "training": "Training curves",
}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
nav a { margin-right: 1em; } .muted { color: #777; } pre { background: #f6f6f6; padding: .8em; }
"""


@dataclass
class RunView:
    """What one run's page shows."""

    run: dict
    metric: str
    k: int
    metrics: pd.DataFrame  # this run's model_metrics, slice 'all'
    decisions: pd.DataFrame  # this run's model_decisions
    history: pd.DataFrame  # run_id, started_at, model, value: the selection metric on test, every run
    champion: str | None
    drift_summary: str
    drift: pd.DataFrame  # this run's drift_checks
    drift_reports: list[str]  # evidently's HTML reports, relative to the page
    validation: str
    segments: pd.DataFrame
    samples: pd.DataFrame  # user_id, rank, name, category, reason
    stages: pd.DataFrame  # stage, wall_s, cpu_s, peak_rss_gib, status
    curves: dict[str, list[dict]] = field(default_factory=dict)  # fit -> ncf's epochs


def run_folder(settings: Settings, run_id: str) -> Path:
    return Layout(settings).reports / "runs" / run_id


def gather(settings: Settings, run_id: str) -> RunView:
    """Read what the published run left; copies evidently's reports into the run's folder
    (the drift folder holds the latest run's only)."""
    layout, db = Layout(settings), settings.publish.warehouse
    metric, k = settings.evaluate.selection_metric, settings.evaluate.selection_k
    folder = run_folder(settings, run_id)
    reports = []
    for report in sorted(layout.drift.glob("*.html")):
        (folder / "drift").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(report, folder / "drift" / report.name)
        reports.append(f"drift/{report.name}")
    summary = json.loads((layout.drift / "summary.json").read_text()) if (layout.drift / "summary.json").exists() else {}
    validation = layout.validation / "summary.txt"
    stages = pd.DataFrame(json.loads(layout.stage_report.read_text())) if layout.stage_report.exists() else pd.DataFrame()
    curves = {}
    for fit in ("valid", "test"):
        history = layout.model_dir("ncf", fit) / "training_history.json"
        if history.exists():
            curves[fit] = json.loads(history.read_text())["epochs"]
    with warehouse.Reader(db) as reader:
        champion = reader.rows("SELECT DISTINCT model || ' v' || model_version FROM recommendations")
        samples = reader.query(
            """SELECT user_id, rank, item_name AS name, item_category AS category, reason FROM recommendations
               WHERE user_id IN (SELECT DISTINCT user_id FROM recommendations ORDER BY hash(user_id) LIMIT ?) AND rank <= 10
               ORDER BY user_id, rank""",
            [SAMPLE_USERS],
        )
        return RunView(
            run=reader.query("SELECT * FROM runs WHERE run_id = ?", [run_id]).iloc[0].to_dict(),
            metric=metric,
            k=k,
            metrics=reader.query("SELECT model, split, metric, k, value FROM model_metrics WHERE run_id = ? AND slice = 'all'", [run_id]),
            decisions=reader.query("SELECT * FROM model_decisions WHERE run_id = ? ORDER BY decided_at", [run_id]),
            history=reader.query(
                """SELECT m.run_id, r.started_at, m.model, m.value FROM model_metrics m JOIN runs r USING (run_id)
                   WHERE m.split = 'test' AND m.metric = ? AND m.k = ? AND m.slice = 'all' ORDER BY r.started_at, m.model""",
                [metric, k],
            ),
            champion=champion[0][0] if len(champion) == 1 else None,
            drift_summary=summary.get("summary", ""),
            drift=reader.query('SELECT "check", "column", statistic, value, threshold, drifted FROM drift_checks WHERE run_id = ?', [run_id]),
            drift_reports=reports,
            validation=validation.read_text() if validation.exists() else "",
            segments=reader.query("SELECT label, size, recency_days, frequency, monetary, basket_size, top_categories FROM segment_profiles ORDER BY size DESC"),
            samples=samples,
            stages=stages,
            curves=curves,
        )


def write_run_pages(settings: Settings, run_id: str) -> Path:
    """reports/runs/<run_id>/index.html and reports/index.html, from the published warehouse."""
    view = gather(settings, run_id)
    page = run_folder(settings, run_id) / "index.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(run_page(view))
    runs = warehouse.query(settings.publish.warehouse, "SELECT run_id, started_at, finished_at, status FROM runs ORDER BY started_at DESC")
    published = [r for r in runs["run_id"] if (run_folder(settings, r) / "index.html").exists()]
    (Layout(settings).reports / "index.html").write_text(index_page(runs[runs["run_id"].isin(published)], view.history, view.metric, view.k))
    return page


def _table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return '<p class="muted">none</p>'
    rows = []
    for record in frame.itertuples(index=False):
        cells = []
        for value in record:
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            cells.append(f'<td class="num">{html.escape(as_text(value))}</td>' if number else f"<td>{html.escape(as_text(value))}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _chart(figure) -> str:
    figure.update_layout(height=360, margin=dict(l=40, r=20, t=40, b=40), template="plotly_white")
    return figure.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})


def _page(title: str, body: str) -> str:
    from plotly.offline import get_plotlyjs

    return (
        f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style><script>{get_plotlyjs()}</script></head><body>{body}</body></html>"
    )


def _metric_table(view: RunView) -> pd.DataFrame:
    at_k = view.metrics[(view.metrics["k"] == view.k) & view.metrics["metric"].isin(SUMMARY_METRICS)]
    table = at_k.pivot_table(index=["model", "split"], columns="metric", values="value").reset_index()
    return table[["model", "split", *[m for m in SUMMARY_METRICS if m in table.columns]]].sort_values(["split", "model"], ascending=[False, True])


def _history_chart(history: pd.DataFrame, metric: str, k: int) -> str:
    import plotly.graph_objects as go

    figure = go.Figure()
    for model, rows in history.groupby("model"):
        figure.add_trace(go.Scatter(x=rows["started_at"], y=rows["value"], mode="lines+markers", name=model))
    figure.update_layout(title=f"test {metric}@{k} by run", xaxis_title="run started", yaxis_title=f"{metric}@{k}")
    return _chart(figure)


def run_page(view: RunView) -> str:
    import plotly.graph_objects as go

    run_id, metric_k = view.run["run_id"], f"{view.metric}@{view.k}"
    parts = [f"<h1>recmill run {html.escape(run_id)}</h1>",
             f'<p><a href="../../index.html">all runs</a> · status <b>{html.escape(str(view.run["status"]))}</b> · '
             f"started {as_text(view.run['started_at'])} · finished {as_text(view.run['finished_at'])} · data {html.escape(str(view.run['data_fingerprint']))} · "
             f"champion <b>{html.escape(view.champion or 'none')}</b></p>",
             "<nav>" + "".join(f'<a href="#{i}">{h}</a>' for i, h in SECTIONS.items()) + "</nav>"]

    def section(key: str, body: str) -> None:
        parts.append(f'<section id="{key}"><h2>{SECTIONS[key]}</h2>{body}</section>')

    table = _metric_table(view)
    test = table[table["split"] == "test"].sort_values(view.metric, ascending=False) if view.metric in table else table.iloc[0:0]
    bars = go.Figure(go.Bar(x=test["model"], y=test.get(view.metric, []), marker_color=[
        "#d62728" if view.champion and view.champion.startswith(m + " ") else "#1f77b4" for m in test["model"]]))
    bars.update_layout(title=f"test {metric_k} (red: the champion's model)", yaxis_title=metric_k)
    section("metrics", f"<p>At k = {view.k}; valid chooses the challenger, test reports.</p>{_table(table)}{_chart(bars)}")
    decisions = view.decisions.drop(columns=["run_id"], errors="ignore")
    reasons = "".join(f"<li>{html.escape(r)}</li>" for rs in view.decisions.get("reasons", []) for r in str(rs).split("; ") if r)
    section("gate", f"{_table(decisions.drop(columns=['reasons'], errors='ignore'))}<ul>{reasons}</ul>")
    section("history", _history_chart(view.history, view.metric, view.k) if not view.history.empty else '<p class="muted">none</p>')
    links = "".join(f'<li><a href="{html.escape(href)}">{html.escape(Path(href).stem)}</a> (evidently)</li>' for href in view.drift_reports)
    section("drift", f"<p>{html.escape(view.drift_summary)}</p><ul>{links}</ul>{_table(view.drift)}")
    section("validation", f"<pre>{html.escape(view.validation or 'no validation summary')}</pre>")
    section("segments", _table(view.segments))
    buy_again = view.metrics[(view.metrics["model"] == "reorder") & view.metrics["metric"].isin(BUY_AGAIN_METRICS)]
    section("buy-again", _table(buy_again.pivot_table(index="split", columns="metric", values="value").reset_index()) if not buy_again.empty else '<p class="muted">no reorder model in this run</p>')
    samples = "".join(f"<h3>user {html.escape(str(user))}</h3>{_table(rows.drop(columns=['user_id']))}" for user, rows in view.samples.groupby("user_id"))
    section("samples", samples or '<p class="muted">none</p>')
    stage_chart = ""
    if not view.stages.empty:
        timed = view.stages[::-1]
        stage_chart = _chart(go.Figure(go.Bar(x=timed["wall_s"], y=timed["stage"], orientation="h")).update_layout(
            title="wall seconds per stage", height=max(360, 18 * len(timed))))
    section("stages", _table(view.stages) + stage_chart)
    curves = ""
    for fit, epochs in view.curves.items():
        frame = pd.DataFrame(epochs)
        figure = go.Figure([go.Scatter(x=frame["epoch"], y=frame["loss"], name="training loss", mode="lines+markers")])
        if "valid_ndcg@10" in frame:
            figure.add_trace(go.Scatter(x=frame["epoch"], y=frame["valid_ndcg@10"], name="validation NDCG@10", mode="lines+markers", yaxis="y2"))
        figure.update_layout(title=f"ncf, {fit} fit", xaxis_title="epoch", yaxis_title="loss",
                             yaxis2=dict(title="NDCG@10", overlaying="y", side="right"))
        curves += _chart(figure)
    section("training", curves or '<p class="muted">no model with a training curve in this run</p>')
    return _page(f"recmill run {run_id}", "".join(parts))


def index_page(runs: pd.DataFrame, history: pd.DataFrame, metric: str, k: int) -> str:
    rows = "".join(
        f'<tr><td><a href="runs/{html.escape(r.run_id)}/index.html">{html.escape(r.run_id)}</a></td>'
        f"<td>{as_text(r.started_at)}</td><td>{as_text(r.finished_at)}</td><td>{html.escape(str(r.status))}</td></tr>"
        for r in runs.itertuples(index=False)
    )
    table = f"<table><thead><tr><th>run</th><th>started</th><th>finished</th><th>status</th></tr></thead><tbody>{rows}</tbody></table>"
    chart = _history_chart(history, metric, k) if not history.empty else ""
    return _page("recmill runs", f"<h1>recmill runs</h1>{table}{chart}")
