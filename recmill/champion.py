"""The champion: the registered version whose lists readers get. Its lists for every user
now (checked before anything is written), its fit on all the data made servable, and the
champion changed by hand (activate, rollback) or put back in line with the warehouse."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recmill import schema as S
from recmill import warehouse
from recmill.config import Settings
from recmill.data.interactions import factorized, index_of
from recmill.data.output_checks import check_recommendations, raise_if_failed
from recmill.data.split import user_item_pairs
from recmill.errors import RecmillError
from recmill.evaluation.gate import PROMOTE
from recmill.fits import saved_fit
from recmill.io import Layout, read_frame
from recmill.models import load_saved
from recmill.models.base import Recommender, saved_item_ids, saved_state
from recmill.registry import CHAMPION, PREVIOUS_CHAMPION, Registry, Version
from recmill.shards import recommend_in_shards

log = logging.getLogger("recmill")


def all_users(layout: Layout) -> list[str]:
    """Everyone in the data: users with events and users listed in the users table."""
    events = read_frame(layout.canonical / "events.parquet", columns=[S.USER_ID])[S.USER_ID]
    users = read_frame(layout.canonical / "users.parquet", columns=[S.USER_ID])[S.USER_ID]
    return sorted(set(events.dropna().unique()) | set(users.dropna().unique()))


def current_had(settings: Settings) -> pd.DataFrame:
    """The (user_id, item_id) pairs users have in all of today's data (Arrow strings: a set of
    items per user would take GBs at Instacart size)."""
    events = read_frame(Layout(settings).canonical / "events.parquet", columns=[S.USER_ID, S.ITEM_ID, S.EVENT_TYPE])
    return user_item_pairs(events, settings.interactions.positive_event_types)


def pair_codes(pairs: pd.DataFrame, user_ids, item_ids) -> np.ndarray:
    """Each (user_id, item_id) pair as its user's position * len(item_ids) + its item's; -1
    where either is not there."""
    users, items = index_of(user_ids, pairs[S.USER_ID]), index_of(item_ids, pairs[S.ITEM_ID])
    return np.where((users >= 0) & (items >= 0), users.astype(np.int64) * len(item_ids) + items, -1)


def most_unseen(user_ids, item_ids, seen: sp.spmatrix, had: pd.DataFrame) -> int:
    """The most items a user has now that a model (its user_ids_, item_ids_ and seen_) did
    not see them have."""
    users, had_users = factorized(had[S.USER_ID])
    rows = np.append(pd.Index(user_ids).get_indexer(had_users), -1)[users]
    cols = index_of(item_ids, had[S.ITEM_ID])
    seen = seen.tocsr()
    seen = seen if seen.has_sorted_indices else seen.sorted_indices()  # row-major codes in order: binary search
    seen_codes = np.repeat(np.arange(seen.shape[0], dtype=np.int64), np.diff(seen.indptr)) * seen.shape[1] + seen.indices
    codes = np.where((rows >= 0) & (cols >= 0), rows.astype(np.int64) * seen.shape[1] + cols, -1)
    at = np.minimum(np.searchsorted(seen_codes, codes), max(len(seen_codes) - 1, 0))
    unseen = (codes < 0) | (seen_codes[at] != codes) if len(seen_codes) else np.ones(len(codes), bool)
    return int(np.bincount(users[unseen]).max(initial=0))


def lists_now(model: Recommender | Path, users: list[str], k: int, had: pd.DataFrame | None, workers: int = 1) -> pd.DataFrame:
    """Each user's top k with reasons; with ``had`` (user_id, item_id pairs), items the user
    has now are left out, including those bought after the model was fitted. ``model``: a
    fitted model, or the folder of a saved one, which with workers above one that many
    processes load, each listing shards of the users (recmill.shards)."""
    saved = model if isinstance(model, Path) else None
    in_shards = saved is not None and workers > 1
    if in_shards:  # the workers load the model: this process reads what it needs of it (a whole one is GBs at Instacart size)
        user_ids, item_ids, seen = saved_state(saved, "user_ids_", "item_ids_", "seen_")
    else:
        model = load_saved(saved) if saved is not None else model
        user_ids, item_ids, seen = model.user_ids_, model.item_ids_, model.seen_
    extra = 0 if had is None else most_unseen(user_ids, item_ids, seen, had)
    if in_shards:
        recs = recommend_in_shards(saved, users, k + extra, had is not None, workers)
    else:
        recs = model.recommend(users, k=k + extra, exclude_seen=had is not None, reasons=True)
    if extra:
        had_codes = pair_codes(had, users, item_ids)
        recs = recs[~np.isin(pair_codes(recs, users, item_ids), had_codes[had_codes >= 0])]
        recs = recs[recs.groupby(S.USER_ID).cumcount() < k].copy()
        recs["rank"] = recs.groupby(S.USER_ID).cumcount().astype("int32") + 1
    return recs.reset_index(drop=True)


def checked_lists(
    settings: Settings, model: Recommender | Path, users: list[str], had: pd.DataFrame | None, table: str
) -> pd.DataFrame:
    """lists_now (with publish.workers for a saved model), after the output checks pass (they
    raise, naming the rows at fault, when not)."""
    recs = lists_now(model, users, settings.publish.k, had, settings.publish.worker_count(len(users)))
    item_ids = saved_item_ids(model) if isinstance(model, Path) else model.item_ids_
    result = check_recommendations(
        recs, settings.publish.k, users, None if had is None else had[had[S.ITEM_ID].isin(item_ids).to_numpy(bool)],
        len(item_ids), Layout(settings).reports / "output_checks", table=table,
        example_rows=settings.validation.example_rows,
    )
    raise_if_failed(result)
    return recs


def recommendation_frame(recs: pd.DataFrame, version: Version, run_id: str, generated_at: datetime) -> pd.DataFrame:
    return recs.assign(model=version.model, model_version=version.version, run_id=run_id, generated_at=generated_at)


def decision_row(run_id: str, selection: dict, decided_at: datetime) -> pd.DataFrame:
    return pd.DataFrame([{
        "run_id": run_id, "champion_version": selection["champion_version"], "challenger_version": selection["challenger_version"],
        "metric": selection["metric"], "champion_value": selection["champion_value"], "challenger_value": selection["challenger_value"],
        "p_value": selection["p_value"], "decision": selection["decision"], "reasons": "; ".join(selection["reasons"]),
        "decided_at": decided_at,
    }])


def champion_fit(settings: Settings, registry: Registry, selection: dict) -> tuple[Version, Path]:
    """The version that publishes and the folder of its fit on all the data."""
    layout = Layout(settings)
    if selection["decision"] == PROMOTE:
        version = registry.get(selection["challenger_version"])
        return version, layout.model_dir(version.model, "full")
    version = registry.get(selection["champion_version"])
    return version, saved_fit(settings, registry, version, layout.data / "champion" / version.version)


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
    registry.set_servable(version, load_saved(saved_fit(settings, registry, version, into)).save(into / "servable"))


def activate(settings: Settings, version: str, decision: str) -> dict:
    """Make a registered version the champion and republish `recommendations` from it, at once.

    decision ('activate' or 'rollback') is recorded in model_decisions."""
    layout = Layout(settings)
    registry = Registry(settings.tracking)
    target = registry.get(version)
    current = registry.alias(CHAMPION)
    fitted = saved_fit(settings, registry, target, layout.data / "champion" / target.version)
    now = datetime.now(UTC).replace(tzinfo=None)
    run_id = warehouse.last_retrain(settings.publish.warehouse)
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
        registry.set_servable(target, load_saved(fitted).save(layout.data / "champion" / target.version / "servable"))
    return {"champion": target.label, "previous": current.label if current else None, "row_counts": counts}


def rollback(settings: Settings) -> dict:
    """Give the champion back to the version it replaced."""
    previous = Registry(settings.tracking).alias(PREVIOUS_CHAMPION)
    if previous is None:
        raise RecmillError("nothing to roll back to: no champion has been replaced yet")
    return activate(settings, previous.version, "rollback")


def champion_is_served(settings: Settings, registry: Registry) -> None:
    """Point the champion alias at the version whose lists the warehouse serves, when they
    differ: a publish stopped between the switch and the registry leaves them so, and the
    warehouse is what readers see."""
    serving = warehouse.serving_version(settings.publish.warehouse)
    champion = registry.alias(CHAMPION)
    if serving is not None and (champion is None or champion.version != serving):
        log.warning("the registry named %s champion but the warehouse serves version %s: champion set to %s",
                    champion.label if champion else "no version", serving, serving)
        registry.make_champion(serving)
