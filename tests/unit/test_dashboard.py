"""The run dashboard's pages from hand-written figures: every section, the numbers as given,
names escaped, nothing fetched."""

from __future__ import annotations

import re
from datetime import datetime

import pandas as pd

from recmill.dashboard import SECTIONS, RunView, index_page, run_page


def view(**changes) -> RunView:
    metrics = pd.DataFrame(
        [("als", "test", "ndcg", 10, 0.3125), ("als", "valid", "ndcg", 10, 0.25), ("popularity", "test", "ndcg", 10, 0.1875),
         ("als", "test", "recall", 10, 0.5), ("als", "test", "ndcg", 5, 0.9), ("reorder", "test", "auc", None, 0.8125)],
        columns=["model", "split", "metric", "k", "value"],
    )
    fields = dict(
        run={"run_id": "r2", "status": "success", "started_at": datetime(2026, 1, 8, 3), "finished_at": datetime(2026, 1, 8, 3, 9),
             "data_fingerprint": "abc"},
        metric="ndcg", k=10, metrics=metrics,
        decisions=pd.DataFrame([{"run_id": "r2", "decision": "promote", "champion_version": "1", "challenger_version": "2",
                                 "reasons": "als beats popularity by 66.7%; guardrails hold"}]),
        history=pd.DataFrame({"run_id": ["r1", "r2"], "started_at": [datetime(2026, 1, 1), datetime(2026, 1, 8)],
                              "model": ["als", "als"], "value": [0.28, 0.3125]}),
        champion="als v2", drift_summary="2 of 9 columns drifted", drift=pd.DataFrame({"check": ["events"], "column": ["value"], "drifted": [True]}),
        drift_reports=["drift/events.html"], validation="Validation passed: 23 expectations on events",
        segments=pd.DataFrame({"label": ["loyal"], "size": [12]}),
        samples=pd.DataFrame({"user_id": ["u1", "u1"], "rank": [1, 2], "name": ["<script>alert(1)</script>", "Milk"],
                              "category": ["x", "dairy"], "reason": ["because you bought Eggs", "popular in dairy"]}),
        stages=pd.DataFrame({"stage": ["ingest", "publish"], "wall_s": [3.5, 9.25], "status": ["ok", "ok"]}),
        curves={"test": [{"epoch": 1, "loss": 0.5, "valid_ndcg@10": 0.1}, {"epoch": 2, "loss": 0.4, "valid_ndcg@10": 0.12}]},
    )
    return RunView(**(fields | changes))


def test_the_run_page_has_every_section_with_its_figures():
    page = run_page(view())
    assert re.findall(r'<section id="([\w-]+)">', page) == list(SECTIONS)
    assert '<td>als</td><td>test</td><td class="num">0.5</td><td class="num">0.3125</td>' in page  # recall, ndcg at k 10
    assert "0.9<" not in page  # ndcg@5 is not the page's k
    assert "<li>als beats popularity by 66.7%</li><li>guardrails hold</li>" in page
    assert '<a href="drift/events.html">events</a>' in page and "Validation passed: 23 expectations" in page
    assert "<td class=\"num\">0.8125</td>" in page  # buy again: reorder's AUC
    assert "<h3>user u1</h3>" in page and "because you bought Eggs" in page
    assert page.count("plotly-graph-div") >= 4  # metrics, history, stages, training curves


def test_the_pages_escape_names_and_fetch_nothing():
    page = run_page(view())
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    for text in (page, index_page(pd.DataFrame({"run_id": ["r2"], "started_at": [1], "finished_at": [2], "status": ["success"]}),
                                  view().history, "ndcg", 10)):
        assert not re.search(r"<script[^>]+src=|<link[^>]+href=", text)  # plotly's JavaScript is inside the page
        assert text.count("<script>") == 1  # the library, once; each chart's own script is small


def test_a_run_without_models_with_curves_or_reorder_says_so():
    page = run_page(view(curves={}, metrics=view().metrics.query("model != 'reorder'")))
    assert "no model with a training curve in this run" in page and "no reorder model in this run" in page


def test_the_index_links_every_run():
    runs = pd.DataFrame({"run_id": ["r2", "r1"], "started_at": [2, 1], "finished_at": [3, 2], "status": ["success", "success"]})
    page = index_page(runs, view().history, "ndcg", 10)
    assert re.findall(r'href="runs/(\w+)/index.html"', page) == ["r2", "r1"]
