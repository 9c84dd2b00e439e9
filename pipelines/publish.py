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

from pipelines.common import keep_fit_data, load_fit, refitted, run_info
from pipelines.evaluate import FITS
from recmill import warehouse
from recmill.config import Settings
from recmill.data.output_checks import check_recommendations, raise_if_failed
from recmill.data.split import items_by_user
from recmill.drift import ROW_COLUMNS, prediction_drift
from recmill.evaluation.gate import PROMOTE
from recmill.io import Layout, read_frame, read_json, write_json
from recmill.models import REGISTRY
from recmill.models.base import Recommender
from recmill.registry import CHAMPION, PREVIOUS_CHAMPION, Registry, Version
from recmill.schema import WAREHOUSE_TABLES
from recmill.tracking import Tracker

log = logging.getLogger("recmill")


def all_users(layout: Layout) -> list[str]:
    """Everyone in the data: users with events and users listed in the users table."""
    events = read_frame(layout.canonical / "events.parquet", columns=["user_id"])["user_id"]
    users = read_frame(layout.canonical / "users.parquet", columns=["user_id"])["user_id"]
    return sorted(set(events.dropna().unique()) | set(users.dropna().unique()))


def current_had(settings: Settings) -> dict[str, set]:
    """user -> the items they have in all of today's data."""
    events = read_frame(Layout(settings).canonical / "events.parquet", columns=["user_id", "item_id", "event_type"])
    return items_by_user(events, settings.interactions.positive_event_types)


def lists_now(model: Recommender, users: list[str], k: int, had: dict[str, set] | None) -> pd.DataFrame:
    """Each user's top k with reasons; with ``had``, items the user has now are left out,
    including those bought after the model was fitted."""
    extra = 0
    if had is not None:
        rows = model.user_rows(users)
        for user, row in zip(users, rows):
            known = set(model.item_ids_[model._history(row)]) if row >= 0 else set()
            extra = max(extra, len(had.get(user, set()) - known))
    recs = model.recommend(users, k=k + extra, exclude_seen=had is not None, reasons=True)
    if extra:  # a lookup per listed item: a set of every (user, item) had would take GBs at Instacart size
        recs = recs[[i not in had.get(u, ()) for u, i in zip(recs["user_id"], recs["item_id"])]]
        recs = recs[recs.groupby("user_id").cumcount() < k].copy()
        recs["rank"] = recs.groupby("user_id").cumcount().astype("int32") + 1
    return recs.reset_index(drop=True)


def metric_rows(settings: Settings, run_id: str) -> pd.DataFrame:
    """Every evaluated model's figures as model_metrics rows: overall (slice 'all'), every
    slice of the evaluation, and the percent difference from the baseline ('vs_baseline')."""
    layout = Layout(settings)
    document = read_json(layout.evaluation / f"{run_id}.json")
    rows = []
    for model in settings.train.models:
        scored = read_json(layout.metrics_file(model))
        if "skipped" in scored:
            continue
        slices = [(split, "all", scored[split]) for split in FITS]
        slices += [(split, name, values) for split, by in scored["slices"].items() for name, values in by.items()]
        versus = document["models"].get(model, {}).get("comparison_to_baseline")
        if versus:
            slices.append(("test", f"vs_baseline={settings.evaluate.baseline}", {m: v for m, v in versus.items() if v is not None}))
        for split, slice_, values in slices:
            for key, value in values.items():
                metric, _, k = key.partition("@")
                rows.append(
                    {"run_id": run_id, "model": model, "model_version": scored["mlflow_run_id"], "split": split,
                     "metric": metric, "k": int(k) if k else None, "value": value, "slice": slice_}
                )
    return pd.DataFrame(rows).astype({"k": "Int32"})


def decision_row(run_id: str, selection: dict, decided_at: datetime) -> pd.DataFrame:
    return pd.DataFrame([{
        "run_id": run_id, "champion_version": selection["champion_version"], "challenger_version": selection["challenger_version"],
        "metric": selection["metric"], "champion_value": selection["champion_value"], "challenger_value": selection["challenger_value"],
        "p_value": selection["p_value"], "decision": selection["decision"], "reasons": "; ".join(selection["reasons"]),
        "decided_at": decided_at,
    }])


def ab_variant(user_ids, salt: str, share: float) -> list[str]:
    """'challenger' for a stable share of users (a hash of salt and user id), else 'champion'."""
    def unit(user: str) -> float:
        return int.from_bytes(hashlib.sha256(f"{salt}:{user}".encode()).digest()[:8], "big") / 2**64

    return ["challenger" if unit(str(u)) < share else "champion" for u in user_ids]


def checked_lists(
    settings: Settings, model: Recommender, users: list[str], had: dict[str, set] | None, table: str
) -> pd.DataFrame:
    """lists_now, after the output checks pass (they raise, naming the rows at fault, when not)."""
    recs = lists_now(model, users, settings.publish.k, had)
    known = set(model.item_ids_)
    result = check_recommendations(
        recs, settings.publish.k, users, None if had is None else {u: items & known for u, items in had.items()},
        len(model.item_ids_), Layout(settings).reports / "output_checks", table=table,
        example_rows=settings.validation.example_rows,
    )
    raise_if_failed(result)
    return recs


def recommendation_frame(recs: pd.DataFrame, version: Version, run_id: str, generated_at: datetime) -> pd.DataFrame:
    return recs.assign(model=version.model, model_version=version.version, run_id=run_id, generated_at=generated_at)


def champion_fit(settings: Settings, registry: Registry, selection: dict) -> tuple[Version, Recommender]:
    """The version that publishes and its fit on all the data."""
    layout = Layout(settings)
    if selection["decision"] == PROMOTE:
        version = registry.get(selection["challenger_version"])
        return version, REGISTRY[version.model].load(layout.model_dir(version.model, "full"))
    version = registry.get(selection["champion_version"])
    return version, load_fit(settings, registry, version, layout.data / "champion" / version.version)


def catalogue_frame(items: pd.DataFrame) -> pd.DataFrame:
    """The items table: the canonical items' published columns, NULL where a source lacks one."""
    columns = [c for c, _ in WAREHOUSE_TABLES["items"]]
    return items.reindex(columns=columns).astype({"item_id": "string", "name": "string", "category": "string", "brand": "string", "price": "float64"})


def build_frames(settings: Settings, generated_at: datetime) -> dict[str, pd.DataFrame]:
    layout = Layout(settings)
    info = run_info(settings)
    selection = read_json(layout.selection)
    registry = Registry(settings.tracking)
    users = all_users(layout)
    had = current_had(settings) if settings.publish.exclude_seen else None
    version, publisher = champion_fit(settings, registry, selection)
    recs = recommendation_frame(checked_lists(settings, publisher, users, had, "recommendations"), version, info["run_id"], generated_at)

    models = {m: REGISTRY[m].load(layout.model_dir(m, "full")) for m in refitted(settings)}
    similar = [
        m.similar_items(k=settings.publish.similar_k).assign(model=name, run_id=info["run_id"])
        for name, m in models.items()
        if m.has_similar_items
    ]
    extra = {}
    for name, m in models.items():
        for table, frame in m.tables().items():
            extra[table] = frame.assign(run_id=info["run_id"])
    ab = {"recommendations_challenger": pd.DataFrame(columns=list(recs.columns)), "ab_assignments": pd.DataFrame(columns=["user_id", "variant", "run_id"])}
    if settings.gate.ab_test and selection["decision"] != PROMOTE:
        challenger = registry.get(selection["challenger_version"])
        fitted = models.get(challenger.model) or REGISTRY[challenger.model].load(layout.model_dir(challenger.model, "full"))
        ab["recommendations_challenger"] = recommendation_frame(
            checked_lists(settings, fitted, users, had, "recommendations_challenger"), challenger, info["run_id"], generated_at
        )
        ab["ab_assignments"] = pd.DataFrame(
            {"user_id": users, "variant": ab_variant(users, settings.gate.ab_salt, settings.gate.ab_share), "run_id": info["run_id"]}
        )
    checks, severe = drift_rows(settings, recs, len(publisher.item_ids_))
    runs = pd.DataFrame(
        [
            {
                "run_id": info["run_id"],
                "started_at": pd.Timestamp(info["started_at"]),
                "finished_at": generated_at,
                "status": "success, severe drift" if severe else "success",
                "data_fingerprint": info["data_fingerprint"],
                "params_json": info["params_json"],
            }
        ]
    )
    empty_similar = pd.DataFrame(columns=["item_id", "similar_item_id", "rank", "score", "model", "run_id"])
    return {
        "recommendations": recs,
        "items": catalogue_frame(read_frame(layout.canonical / "items.parquet")),
        "similar_items": pd.concat(similar, ignore_index=True) if similar else empty_similar,
        "model_metrics": metric_rows(settings, info["run_id"]),
        "model_decisions": decision_row(info["run_id"], selection, generated_at),
        "drift_checks": checks.assign(run_id=info["run_id"]),
        "runs": runs,
        **ab,
        **extra,
    }


def drift_rows(settings: Settings, recs: pd.DataFrame, n_items: int) -> tuple[pd.DataFrame, list[str]]:
    """drift_checks rows of this run (its data, from the drift stage; its lists against
    the published ones) and the summaries of what drifted severely."""
    layout = Layout(settings)
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
    selection = read_json(layout.selection)
    if not settings.publish.enabled:  # every table is built and checked, and goes nowhere
        frames = build_frames(settings, datetime.now(UTC).replace(tzinfo=None))
        result = {"run_id": run_info(settings)["run_id"], "published": False, "chosen": selection["chosen"], "decision": selection["decision"],
                  "reasons": selection["reasons"], "row_counts": {t: len(f) for t, f in frames.items()},
                  "why": "publish.enabled is false: the tables were built and checked; the warehouse and the registry are as they were"}
        write_json(layout.publish_report, result)
        close_pipeline_run(settings, selection)
        return result
    path = settings.publish.warehouse
    if warehouse.has_run(path, run_info(settings)["run_id"]):
        log.info("this run's tables are in the warehouse already: only the registry is brought up to date")
        counts = warehouse.row_counts(path)
    else:
        counts = warehouse.publish(path, build_frames(settings, datetime.now(UTC).replace(tzinfo=None)))
    registry = Registry(settings.tracking)
    if selection["decision"] == PROMOTE:
        registry.make_champion(selection["challenger_version"])
    champion = registry.alias(CHAMPION)
    make_servable(settings, registry, champion, selection)
    archived = registry.archive_old(settings.gate.keep_versions)
    result = {
        "run_id": run_info(settings)["run_id"],
        "published": True,
        "warehouse": str(settings.publish.warehouse),
        "chosen": selection["chosen"],
        "decision": selection["decision"],
        "reasons": selection["reasons"],
        "drift": read_json(layout.drift / "summary.json")["summary"],
        "champion": champion.label,
        "archived_versions": archived,
        "row_counts": counts,
    }
    write_json(layout.publish_report, result)
    close_pipeline_run(settings, selection)
    return result


def make_servable(settings: Settings, registry: Registry, version: Version, selection: dict) -> None:
    """The champion's registry entry holds its fit on all the data, the one that publishes,
    as an MLflow pyfunc model (models:/recmill@champion)."""
    if registry.is_servable(version):
        return
    layout = Layout(settings)
    if selection["decision"] == PROMOTE and version.version == selection["challenger_version"]:
        registry.set_servable(version, layout.model_dir(version.model, "full"))
        return
    into = layout.data / "champion" / version.version
    registry.set_servable(version, load_fit(settings, registry, version, into).save(into / "servable"))


def close_pipeline_run(settings: Settings, selection: dict) -> None:
    """The pipeline run's MLflow parent run: tagged with the gate's decision, finished."""
    parent = run_info(settings).get("mlflow_run_id")
    if parent is None:
        return
    tracker = Tracker(settings.tracking)
    for key in ("decision", "chosen", "challenger", "champion"):
        tracker.client.set_tag(parent, f"recmill.{key}", str(selection.get(key)))
    tracker.finish(parent)


def activate(settings: Settings, version: str, decision: str) -> dict:
    """Make a registered version the champion and republish `recommendations` from it, at once.

    decision ('activate' or 'rollback') is recorded in model_decisions."""
    layout = Layout(settings)
    registry = Registry(settings.tracking)
    target = registry.get(version)
    current = registry.alias(CHAMPION)
    fitted = load_fit(settings, registry, target, layout.data / "champion" / target.version)
    now = datetime.now(UTC).replace(tzinfo=None)
    run_id = warehouse.query(settings.publish.warehouse, "SELECT max(run_id) AS r FROM recommendations")["r"].item()
    had = current_had(settings) if settings.publish.exclude_seen else None
    recs = recommendation_frame(checked_lists(settings, fitted, all_users(layout), had, "recommendations"), target, run_id, now)
    row = decision_row(run_id, {
        "champion_version": current.version if current else None, "challenger_version": target.version,
        "metric": target.metric, "champion_value": current.test_value if current else None, "challenger_value": target.test_value,
        "p_value": None, "decision": decision, "reasons": [f"{target.label} made champion by hand ({decision})"],
    }, now)
    counts = warehouse.publish(settings.publish.warehouse, {"recommendations": recs, "model_decisions": row})
    registry.make_champion(target.version)
    if not registry.is_servable(target):
        registry.set_servable(target, fitted.save(layout.data / "champion" / target.version / "servable"))
    return {"champion": target.label, "previous": current.label if current else None, "row_counts": counts}


def rollback(settings: Settings) -> dict:
    """Give the champion back to the version it replaced."""
    from recmill.errors import RecmillError

    previous = Registry(settings.tracking).alias(PREVIOUS_CHAMPION)
    if previous is None:
        raise RecmillError("nothing to roll back to: no champion has been replaced yet")
    return activate(settings, previous.version, "rollback")
