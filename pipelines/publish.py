"""Publish every table to DuckDB in one switch, `recommendations` from the champion.

When the gate promoted this run's challenger, its fit on all the data publishes and it
becomes the champion. Otherwise the champion keeps publishing: its fit is re-scored for
today's users, leaving out what they have now. With an A/B test on, the challenger's
lists go to `recommendations_challenger` and each user gets a stable variant.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from recmill import schema as S
from recmill import warehouse
from recmill.champion import (
    all_users,
    champion_fit,
    checked_lists,
    current_had,
    decision_row,
    make_servable,
    recommendation_frame,
)
from recmill.config import Settings
from recmill.dashboard import write_run_pages
from recmill.drift import ROW_COLUMNS, prediction_drift
from recmill.evaluation.gate import PROMOTE
from recmill.fits import keep_fit_data, refitted
from recmill.io import Layout, read_frame, read_json, run_info, write_json
from recmill.models import model_class
from recmill.models.base import saved_item_ids
from recmill.registry import CHAMPION, Registry
from recmill.schema import WAREHOUSE_TABLES
from recmill.scoring import FITS, was_scored
from recmill.tracking import Tracker

log = logging.getLogger("recmill")


def metric_rows(run_id: str, metrics: dict[str, dict], evaluation: dict) -> pd.DataFrame:
    """Every evaluated model's figures (its metrics file) as model_metrics rows: overall
    (slice 'all'), every slice, and the percent difference from the baseline of the run's
    evaluation document ('vs_baseline')."""
    rows = []
    for model, scored in metrics.items():
        if not was_scored(scored):
            continue
        slices = [(split, "all", scored[split]) for split in FITS]
        slices += [(split, name, values) for split, by in scored["slices"].items() for name, values in by.items()]
        versus = evaluation["models"].get(model, {}).get("comparison_to_baseline")
        if versus:
            slices.append(("test", f"vs_baseline={evaluation['baseline']}", {m: v for m, v in versus.items() if v is not None}))
        for split, slice_, values in slices:
            for key, value in values.items():
                metric, _, k = key.partition("@")
                rows.append(
                    {"run_id": run_id, "model": model, "model_version": scored["mlflow_run_id"], "split": split,
                     "metric": metric, "k": int(k) if k else None, "value": value, "slice": slice_}
                )
    return pd.DataFrame(rows).astype({"k": "Int32"})


def ab_variant(user_ids, salt: str, share: float) -> list[str]:
    """'challenger' for a stable share of users (a hash of salt and user id), else 'champion'."""
    def unit(user: str) -> float:
        return int.from_bytes(hashlib.sha256(f"{salt}:{user}".encode()).digest()[:8], "big") / 2**64

    return ["challenger" if unit(str(u)) < share else "champion" for u in user_ids]


def catalogue_frame(items: pd.DataFrame) -> pd.DataFrame:
    """The items table: the canonical items' published columns, NULL where a source lacks one."""
    columns = [c for c, _ in WAREHOUSE_TABLES["items"]]
    return items.reindex(columns=columns).astype({S.ITEM_ID: "string", "name": "string", "category": "string", "brand": "string", "price": "float64"})


def build_frames(settings: Settings, info: dict, selection: dict, generated_at: datetime) -> dict[str, pd.DataFrame]:
    """Every table this run publishes, checked: its lists, similar items, the models' own
    tables, its figures, the gate's decision, drift and the run itself."""
    layout = Layout(settings)
    registry = Registry(settings.tracking)
    users = all_users(layout)
    had = current_had(settings) if settings.publish.exclude_seen else None
    version, publisher = champion_fit(settings, registry, selection)
    recs = recommendation_frame(checked_lists(settings, publisher, users, had, "recommendations"), version, info["run_id"], generated_at)
    n_items = len(saved_item_ids(publisher))

    challenger = registry.get(selection["challenger_version"]) if settings.gate.ab_test and selection["decision"] != PROMOTE else None
    similar, extra = [], {}
    for name in refitted(settings):
        fitted = model_class(name).load(layout.model_dir(name, "full"))
        if fitted.has_similar_items:
            similar.append(fitted.similar_items(k=settings.publish.similar_k).assign(model=name, run_id=info["run_id"]))
        for table, frame in fitted.tables().items():
            extra[table] = frame.assign(run_id=info["run_id"])
        del fitted  # each model is loaded, read and let go in turn: at Instacart size one holds GBs
    ab = {"recommendations_challenger": pd.DataFrame(columns=list(recs.columns)), "ab_assignments": pd.DataFrame(columns=[S.USER_ID, "variant", "run_id"])}
    if challenger is not None:
        challenger_recs = checked_lists(settings, layout.model_dir(challenger.model, "full"), users, had, "recommendations_challenger")
        ab["recommendations_challenger"] = recommendation_frame(challenger_recs, challenger, info["run_id"], generated_at)
        ab["ab_assignments"] = pd.DataFrame(
            {S.USER_ID: users, "variant": ab_variant(users, settings.gate.ab_salt, settings.gate.ab_share), "run_id": info["run_id"]}
        )
    del had
    checks, severe = drift_rows(settings, layout, recs, n_items)
    runs = pd.DataFrame(
        [
            {
                "run_id": info["run_id"],
                "started_at": pd.Timestamp(info["started_at"]),
                "finished_at": generated_at,
                "status": run_status(bool(severe), selection.get("failed", {})),
                "data_fingerprint": info["data_fingerprint"],
                "params_json": info["params_json"],
            }
        ]
    )
    empty_similar = pd.DataFrame(columns=[S.ITEM_ID, "similar_item_id", "rank", "score", "model", "run_id"])
    return {
        "recommendations": recs,
        "items": catalogue_frame(read_frame(layout.canonical / "items.parquet")),
        "similar_items": pd.concat(similar, ignore_index=True) if similar else empty_similar,
        "model_metrics": metric_rows(
            info["run_id"], {m: read_json(layout.metrics_file(m)) for m in settings.train.models},
            read_json(layout.evaluation / f"{info['run_id']}.json"),
        ),
        "model_decisions": decision_row(info["run_id"], selection, generated_at),
        "drift_checks": checks.assign(run_id=info["run_id"]),
        "runs": runs,
        **ab,
        **extra,
    }


def run_status(severe_drift: bool, failed: dict[str, str]) -> str:
    """The runs row's status: success, with what a reader should know beside it."""
    notes = (["severe drift"] if severe_drift else []) + [f"{model} failed to train" for model in failed]
    return ", ".join(["success", *notes])


def drift_rows(settings: Settings, layout: Layout, recs: pd.DataFrame, n_items: int) -> tuple[pd.DataFrame, list[str]]:
    """drift_checks rows of this run (its data, from the drift stage; its lists against
    the published ones) and the summaries of what drifted severely."""
    data = read_json(layout.drift / "summary.json")
    frames, severe = [pd.DataFrame(data["rows"], columns=list(ROW_COLUMNS))], [data["summary"]] if data["severe"] else []
    path = settings.publish.warehouse
    previous = warehouse.query(path, "SELECT user_id, item_id, rank, score FROM recommendations") if Path(path).exists() else pd.DataFrame()
    if len(previous) and len(recs):
        lists = prediction_drift(previous, recs, n_items, settings.drift, layout.drift, settings.seed)
        frames.append(lists.rows)
        severe += [lists.summary] if lists.severe else []
    return pd.concat(frames, ignore_index=True), severe


def run(settings: Settings) -> dict:
    """Switch this run's tables in, then move the registry's aliases. Run again (a retry),
    it finds its run in the warehouse and does only what is left: no table is written twice."""
    keep_fit_data()
    layout = Layout(settings)
    info, selection = run_info(settings), read_json(layout.selection)
    now = datetime.now(UTC).replace(tzinfo=None)
    if not settings.publish.enabled:  # every table is built and checked, and goes nowhere
        frames = build_frames(settings, info, selection, now)
        result = {"run_id": info["run_id"], "published": False, "chosen": selection["chosen"], "decision": selection["decision"],
                  "reasons": selection["reasons"], "row_counts": {t: len(f) for t, f in frames.items()},
                  "why": "publish.enabled is false: the tables were built and checked; the warehouse and the registry are as they were"}
        write_json(layout.publish_report, result)
        close_pipeline_run(settings, info, selection)
        return result
    path = settings.publish.warehouse
    if warehouse.has_run(path, info["run_id"]):
        log.info("this run's tables are in the warehouse already: only the registry is brought up to date")
        counts = warehouse.row_counts(path)
    else:
        counts = warehouse.publish(path, build_frames(settings, info, selection, now))
    registry = Registry(settings.tracking)
    if selection["decision"] == PROMOTE:
        registry.make_champion(selection["challenger_version"])
    champion = registry.alias(CHAMPION)
    make_servable(settings, registry, champion, selection)
    archived = registry.archive_old(settings.gate.keep_versions)
    result = {
        "run_id": info["run_id"],
        "published": True,
        "warehouse": str(settings.publish.warehouse),
        "chosen": selection["chosen"],
        "decision": selection["decision"],
        "reasons": selection["reasons"],
        "drift": read_json(layout.drift / "summary.json")["summary"],
        "champion": champion.label,
        "archived_versions": archived,
        "row_counts": counts,
        "dashboard": dashboard(settings, info["run_id"]),
    }
    write_json(layout.publish_report, result)
    close_pipeline_run(settings, info, selection)
    return result


def dashboard(settings: Settings, run_id: str) -> str | None:
    """The run's HTML pages; a page that cannot be drawn is logged, never a failed publish
    (the tables are out already)."""
    try:
        return str(write_run_pages(settings, run_id))
    except Exception:
        log.exception("the run's dashboard could not be written")
        return None


def close_pipeline_run(settings: Settings, info: dict, selection: dict) -> None:
    """The pipeline run's MLflow parent run: tagged with the gate's decision, finished."""
    parent = info.get("mlflow_run_id")
    if parent is None:
        return
    tracker = Tracker(settings.tracking)
    for key in ("decision", "chosen", "challenger", "champion"):
        tracker.client.set_tag(parent, f"recmill.{key}", str(selection.get(key)))
    tracker.finish(parent)


