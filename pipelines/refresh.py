"""Fold the events that arrived since the last publish into their users' lists, between retrains.

The new events are the rows of refresh.increments' files that neither the canonical events
(what the last retrain learned from) nor an earlier refresh hold. Each of their users'
whole history (canonical events, earlier refreshes' events, the new ones) goes into the
champion's fit and into the reorder fit that published buy_again, item side frozen
(Recommender.refresh_users); only those users' rows of `recommendations` and `buy_again`
are replaced, in one switch, and the refresh is a row of `runs`. New users get lists from
their first events.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from recmill import schema as S
from recmill import warehouse
from recmill.champion import checked_lists, recommendation_frame
from recmill.config import Settings
from recmill.data.interactions import InteractionData, over_items
from recmill.data.sources.files import load_increments
from recmill.data.split import user_item_pairs
from recmill.errors import RecmillError
from recmill.fits import load_fit
from recmill.io import Layout, read_frame, read_json, read_user_rows, write_frame
from recmill.models import model_class
from recmill.models.base import Recommender
from recmill.registry import CHAMPION, Registry

log = logging.getLogger("recmill")


def not_in(events: pd.DataFrame, *known: pd.DataFrame) -> pd.DataFrame:
    """The rows of events found in none of the known frames (all columns compared, through
    a 64-bit hash of each row), each once."""
    def hashed(frame: pd.DataFrame) -> np.ndarray:
        return pd.util.hash_pandas_object(frame[list(S.EVENT_COLUMNS)], index=False).to_numpy()

    keys = hashed(events)
    fresh = ~pd.Series(keys).duplicated().to_numpy()
    since = events[S.TIMESTAMP].min()
    for frame in known:
        frame = frame[(frame[S.TIMESTAMP] >= since).to_numpy(bool)]  # an earlier row cannot equal one of events
        if len(frame):
            fresh &= ~np.isin(keys, hashed(frame))
    return events[fresh].reset_index(drop=True)


def buy_again_fit(settings: Settings, layout: Layout, published_by: str | None) -> Recommender | None:
    """The reorder fit whose lists `buy_again` holds: this data folder's refit, when the
    retrain that published last made it; None (and why, logged) otherwise."""
    record = layout.refit / "reorder.json"
    if "reorder" not in settings.train.models or not record.exists():
        return None
    if read_json(record).get("run_id") != published_by or not layout.model_dir("reorder", "full").is_dir():
        log.warning("refresh: buy_again left as published: the reorder fit here is not the one run %s published", published_by)
        return None
    fitted = model_class("reorder").load(layout.model_dir("reorder", "full"))
    if fitted.segments_ is None or not hasattr(fitted, "item_values_"):
        log.warning("refresh: buy_again left as published: its reorder fit predates refreshing; the next retrain makes one that can")
        return None
    return fitted


def run(settings: Settings) -> dict:
    layout = Layout(settings)
    path = Path(settings.publish.warehouse)
    started = datetime.now(UTC).replace(tzinfo=None)
    if not path.exists():
        raise RecmillError(f"nothing to refresh: {path} has no published tables yet (run `recmill run` first)")
    arrived = load_increments(Path(settings.refresh.increments))
    senders = arrived[S.USER_ID].unique()  # only their rows of the larger files are read
    canonical = read_user_rows(layout.canonical / "events.parquet", senders)
    folded = read_user_rows(layout.refreshed_events, senders) if layout.refreshed_events.exists() else canonical.iloc[:0]
    new = not_in(arrived, canonical, folded)
    result = {"run_id": None, "events": len(new), "users": 0, "why": f"no new events in {settings.refresh.increments}"}
    if new.empty:
        log.info("refresh: %s", result["why"])
        return result

    run_id = f"{started:%Y%m%dT%H%M%S}-refresh-{uuid.uuid4().hex[:6]}"
    users = sorted(new[S.USER_ID].unique())
    history = pd.concat(
        [frame[frame[S.USER_ID].isin(users).to_numpy(bool)] for frame in (canonical, folded, new)], ignore_index=True
    )
    items = read_frame(layout.canonical / "items.parquet")
    user_table = read_frame(layout.canonical / "users.parquet")
    user_table = user_table[user_table[S.USER_ID].isin(users).to_numpy(bool)]
    had = user_item_pairs(history, settings.interactions.positive_event_types) if settings.publish.exclude_seen else None

    registry = Registry(settings.tracking)
    version = registry.alias(CHAMPION)
    serving = warehouse.serving_version(path)
    if version is None or version.version != serving:
        raise RecmillError(f"refresh: the registry's champion ({version.label if version else 'none'}) is not the version "
                           f"{path} serves ({serving}); run `recmill run` first")
    if not version.full_run:
        raise RecmillError(f"refresh: {version.label} has no fit on all the data saved; run `recmill run` first")
    champion = load_fit(settings, registry, version, layout.data / "champion" / version.version)
    built: dict[bytes, InteractionData] = {}  # the history over each catalogue, built once

    def history_of(model: Recommender) -> InteractionData:
        key = hashlib.sha256("\0".join(model.item_ids_).encode()).digest()
        if key not in built:
            built[key] = over_items(history, items, user_table, model.item_ids_, settings.interactions)
        return built[key]

    frames = {}
    if champion.folds_in:
        champion.refresh_users(history_of(champion))
        frames["recommendations"] = recommendation_frame(
            checked_lists(settings, champion, users, had, "recommendations"), version, run_id, started
        )
    else:
        log.warning("refresh: recommendations left as published: the champion %s cannot fold in events", version.label)
    reorder = buy_again_fit(settings, layout, warehouse.last_retrain(path))
    if reorder is not None:
        reorder.refresh_users(history_of(reorder))
        frames["buy_again"] = reorder.tables(users)["buy_again"].assign(run_id=run_id)

    if not frames:
        return {**result, "users": len(users), "why": f"neither {version.label} nor a reorder fit here can fold in events"}
    finished = datetime.now(UTC).replace(tzinfo=None)
    frames["runs"] = pd.DataFrame([{
        "run_id": run_id, "started_at": started, "finished_at": finished, "status": S.REFRESHED,
        "data_fingerprint": f"{len(new)} new events of {len(users)} users", "params_json": settings.to_json(),
    }])
    counts = warehouse.publish(path, frames, users=users)
    earlier = read_frame(layout.refreshed_events) if layout.refreshed_events.exists() else new.iloc[:0]
    layout.refreshed_events.parent.mkdir(parents=True, exist_ok=True)
    write_frame(layout.refreshed_events, pd.concat([earlier, new], ignore_index=True))
    log.info("refresh %s: %d new events of %d users folded into %s and published", run_id, len(new), len(users), version.label)
    return {**result, "run_id": run_id, "users": len(users), "first_user": users[0], "champion": version.label,
            "tables": [t for t in frames if t != "runs"], "row_counts": counts}
