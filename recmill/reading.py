"""What people read from the warehouse, with item names: a user's recommendations, an item's
neighbours, the segments, the recent runs. Each is one read-only query of a published
warehouse file and returns a frame; an unknown user or item is an error that says so."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from recmill import warehouse
from recmill.errors import RecmillError
from recmill.schema import REFRESHED


def as_text(value) -> str:
    """A value as a person reads it in a table: figures to 4 significant digits, times to the
    second, nothing for a missing value."""
    if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def published(path: Path | str) -> Path:
    path = Path(path)
    if not path.exists():
        raise RecmillError(f"no warehouse at {path}: `recmill run` publishes one")
    return path


def recommendations(path: Path | str, user: str, k: int = 10) -> pd.DataFrame:
    """The user's top k as published, best first, with each item's name and category."""
    rows = warehouse.query(
        published(path),
        """SELECT rank, item_id, item_name AS name, item_category AS category, score, reason, model
           FROM recommendations WHERE user_id = ? AND rank <= ? ORDER BY rank""",
        [user, k],
    )
    if rows.empty:
        raise RecmillError(f"user {user!r} has no recommendations in {path}: not in the data of the last run")
    return rows


def similar(path: Path | str, item: str, k: int = 10, model: str | None = None) -> pd.DataFrame:
    """The item's k most similar items by each model that published them (or by ``model``),
    with their names and categories."""
    rows = warehouse.query(
        published(path),
        """SELECT s.model, s.rank, s.similar_item_id AS item_id, i.name, i.category, s.score
           FROM similar_items s LEFT JOIN items i ON i.item_id = s.similar_item_id
           WHERE s.item_id = ? AND s.rank <= ? AND (? IS NULL OR s.model = ?) ORDER BY s.model, s.rank""",
        [item, k, model, model],
    )
    if rows.empty:
        raise RecmillError(f"item {item!r} has no similar items in {path}: not in the catalogue, or no model published them")
    return rows


def segments(path: Path | str) -> pd.DataFrame:
    """The user segments of the last run, largest first, with their RFM profile."""
    return warehouse.query(
        published(path),
        """SELECT segment, label, size, recency_days, frequency, monetary, basket_size, top_categories
           FROM segment_profiles ORDER BY size DESC, segment""",
    )


def runs(path: Path | str, last: int = 5) -> pd.DataFrame:
    """The last runs, newest first: status, minutes taken, data fingerprint, the gate's
    decision, and the data drift checks that flagged."""
    return warehouse.query(
        published(path),
        """SELECT r.run_id, r.status, round(epoch(r.finished_at - r.started_at) / 60, 1) AS minutes,
                  r.data_fingerprint AS data, d.decision, d.challenger_version AS challenger,
                  (SELECT string_agg(c."check" || ':' || c."column", ', ' ORDER BY c."check", c."column")
                   FROM drift_checks c WHERE c.run_id = r.run_id AND c.drifted) AS drifted
           FROM runs r LEFT JOIN model_decisions d ON d.run_id = r.run_id AND d.decision IN ('promote', 'keep')
           ORDER BY r.started_at DESC LIMIT ?""",
        [last],
    )


def champion(path: Path | str, metric: str = "ndcg", k: int = 10) -> pd.DataFrame:
    """The model whose lists `recommendations` holds, its registry version, and its test
    figures at k from the retrain that published them (refreshes since then replaced some
    users' rows with the same version's)."""
    return warehouse.query(
        published(path),
        """WITH serving AS (SELECT DISTINCT r.model, r.model_version, r.run_id FROM recommendations r
                           JOIN runs USING (run_id) WHERE runs.status <> ?)
           SELECT s.model, s.model_version AS version, s.run_id,
                  max(m.value) FILTER (WHERE m.metric = ?) AS metric_value,
                  max(m.value) FILTER (WHERE m.metric = 'precision') AS "precision",
                  max(m.value) FILTER (WHERE m.metric = 'recall') AS recall,
                  max(m.value) FILTER (WHERE m.metric = 'coverage') AS coverage
           FROM serving s LEFT JOIN model_metrics m
             ON m.run_id = s.run_id AND m.model = s.model AND m.split = 'test' AND m.slice = 'all' AND m.k = ?
           GROUP BY ALL""",
        [REFRESHED, metric, k],
    ).rename(columns={"metric_value": f"{metric}@{k}"})
