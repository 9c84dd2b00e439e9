"""Buy again: the chance that a user buys an item they bought before in their next order.

A user's positive events (purchases, ratings) form baskets: one per order_id, or one per
day for events without an order, as in recmill.features. fit() holds out each user's
last basket as the label: the features (recmill.features, computed by DuckDB) describe
the events before it, one row per (user, item bought before), labelled 1 when the item
is in that basket, with the user's RFM segment (recmill.models.segments, found on the
same earlier events). Users with a single basket teach nothing and give no row. A LightGBM
classifier learns the labels, stopping early on a seeded share of the users. The
features are then rebuilt from all the events and every (user, item bought before) pair
gets its probability of being in the next order: the ``buy_again`` table.

When nobody has the same item in two baskets (ratings: a film is rated once) there is
nothing to learn and fit() raises ModelSkipped.

As a recommender it lists the items the user bought before, most probable first, then
the other items by popularity with negative scores (the share of users who have the
item, minus one). With exclude_seen the bought items go, so what remains is the
popularity list: this model is judged by AUC, log loss and next-basket F1, not by
ranking metrics, and never competes to publish ``recommendations``.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recmill import schema as S
from recmill.config import InteractionsConfig, ReorderConfig, SegmentsConfig
from recmill.data.interactions import InteractionData, basket_ids, factorized, index_of
from recmill.data.tables import ID_DTYPE
from recmill.errors import ModelSkipped, RecmillError
from recmill.features import build_features
from recmill.io import frame_batches, read_frame, read_json, write_frame, write_frame_slices
from recmill.models.base import Recommender, ranks
from recmill.models.boosting import booster_params, early_stopping
from recmill.models.segments import SegmentsRecommender, rfm_features

log = logging.getLogger("recmill")

USER_COLUMNS = [
    "n_orders", "n_positive", "mean_basket_size", "mean_days_between_orders", "days_since_last_order",
    "n_items", "reorder_share", "top_category_share", "mean_price",
]
ITEM_COLUMNS = [
    "n_users", "n_positive", "reorder_rate", "repeat_user_share", "mean_cart_position", "price", "price_level",
    "age_days", "view_conversion",
]
PAIR_COLUMNS = [
    "times_bought", "order_share", "orders_since_last", "days_since_last", "mean_cart_position", "longest_streak",
    "in_last_order",
]
FEATURES = (
    [f"user_{c}" for c in USER_COLUMNS] + [f"item_{c}" for c in ITEM_COLUMNS] + [f"pair_{c}" for c in PAIR_COLUMNS]
    + ["in_top_category", "days_since_over_gap", "user_segment"]
)
BATCH_PAIRS = 1_000_000  # (user, item) feature rows in memory at once: ~0.3 GB of float64


def baskets(events: pd.DataFrame, positive_event_types) -> pd.DataFrame:
    """Positive events with their basket (basket_ids) and the basket's start, the time of
    its first positive event."""
    positive = events[S.EVENT_TYPE].isin(list(positive_event_types)).to_numpy(bool)
    pos = events.loc[positive, [c for c in (S.USER_ID, S.ITEM_ID, S.TIMESTAMP, S.ORDER_ID) if c in events]]  # no copy of the rest
    out = pos[[S.USER_ID, S.ITEM_ID, S.TIMESTAMP]].astype({S.USER_ID: ID_DTYPE, S.ITEM_ID: ID_DTYPE})
    out["basket"] = basket_ids(pos)
    out["basket_start"] = out.groupby([S.USER_ID, "basket"])[S.TIMESTAMP].transform("min")
    return out


def has_repeats(basket_events: pd.DataFrame) -> bool:
    """Whether some user has the same item in two baskets."""
    return bool(basket_events.drop_duplicates([S.USER_ID, S.ITEM_ID, "basket"]).duplicated([S.USER_ID, S.ITEM_ID]).any())


def last_baskets(basket_events: pd.DataFrame) -> pd.DataFrame:
    """user_id, basket, basket_start of each user's last basket, for users with two or more."""
    starts = basket_events.drop_duplicates([S.USER_ID, "basket"]).sort_values([S.USER_ID, "basket_start", "basket"])
    counts = starts.groupby(S.USER_ID)["basket"].transform("size")
    return starts[counts >= 2].groupby(S.USER_ID).tail(1)[[S.USER_ID, "basket", "basket_start"]]


def before_labels(events: pd.DataFrame, labels: pd.DataFrame) -> np.ndarray:
    """Which events to keep: all but, for users with a label basket, those of it or after its
    start. Looked up by position, not merged: at Instacart size a merge copies 40M rows."""
    label = index_of(labels[S.USER_ID], events[S.USER_ID])  # the user's row of labels, or -1
    basket, names = factorized(basket_ids(events))
    label_basket = np.append(index_of(names, labels["basket"]), -2)[label]  # -2: no label, never a basket
    label_start = np.append(labels["basket_start"].to_numpy("datetime64[ns]"), np.datetime64("NaT"))[label]
    return (label < 0) | ((events[S.TIMESTAMP].to_numpy("datetime64[ns]") < label_start) & (basket != label_basket))


def feature_inputs(data: InteractionData, work: Path, keep: np.ndarray | None = None) -> tuple[Path, Path | None]:
    """Parquet copies of data's events' feature columns (those ``keep`` marks, or all) and of
    its items, written into ``work`` for DuckDB to read, each user and item as its row and
    column in data (the ids' sorted order): integers group and join faster than strings."""
    work.mkdir(parents=True, exist_ok=True)
    columns = data.events.reindex(columns=[S.TIMESTAMP, S.EVENT_TYPE, S.ORDER_ID])  # taken alone: not the ids' strings too

    def coded(start: int) -> pd.DataFrame:  # a batch of events at a time: no whole copy of them, nor of their codes
        part = slice(start, start + BATCH_PAIRS)
        if keep is not None:
            part = start + np.flatnonzero(keep[part])
        out = columns.iloc[part]
        out = out.astype({S.EVENT_TYPE: ID_DTYPE, S.ORDER_ID: ID_DTYPE}).reset_index(drop=True)
        rows, cols = data.event_cells(part)
        out.insert(0, S.ITEM_ID, cols.astype(np.int32))
        out.insert(0, S.USER_ID, rows.astype(np.int32))
        return out

    slices = (coded(start) for start in range(0, max(len(data.events), 1), BATCH_PAIRS))
    write_frame_slices(work / "events.parquet", slices)  # no whole copy of the events
    items_path, items = None, data.items
    if len(items):
        items_path = work / "items.parquet"
        items = items.assign(**{S.ITEM_ID: index_of(data.item_ids, items[S.ITEM_ID].astype(str)).astype(np.int32)})
        items[items[S.ITEM_ID] >= 0].to_parquet(items_path, index=False)
    return work / "events.parquet", items_path


def feature_files(inputs: tuple[Path, Path | None], positive_event_types, cfg: ReorderConfig, work: Path, stats: bool = False) -> dict[str, Path]:
    """The feature tables (recmill.features) of feature_inputs' files, computed by DuckDB
    into ``work``, and with ``stats`` their statistics (what a fit keeps)."""
    events_path, items_path = inputs
    return build_features(
        events_path, items_path, work / "features", positive_event_types=positive_event_types,
        memory_limit=cfg.memory_limit, threads=cfg.threads, stats=stats,
    )


def feature_batches(paths: dict[str, Path], segment: np.ndarray, users: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The (user, item bought before) pairs as user codes, item codes (feature_inputs'
    codes) and their FEATURES (float64, one column each), at most BATCH_PAIRS pairs at a
    time (of the ``users`` codes only, when given): the pairs of a large shop do not fit in
    memory at once. ``segment`` is the RFM segment of each user code (-1: none). A pair
    finds its user's and item's features by code, NaN where they have none, in numpy: a
    merge of frames sorts and copies several times more."""
    def floats(column: pd.Series) -> np.ndarray:
        return column.to_numpy(np.float64, na_value=np.nan)

    user_frame = read_frame(paths["user_features"], coded_ids=True)
    item_frame = read_frame(paths["item_features"], coded_ids=True)
    # the item's category and the user's top category as one set of codes (-1: none, never equal)
    categories = pd.Index(pd.concat([item_frame["category"], user_frame["top_category"]]).dropna().unique())
    user_codes = user_frame[S.USER_ID].to_numpy(np.int64)
    n_user, n_item, n_pair = len(USER_COLUMNS), len(ITEM_COLUMNS), len(PAIR_COLUMNS)
    gap, segment_at, top_at = n_user, n_user + 1, n_user + 2  # user_side's columns after USER_COLUMNS
    user_side = np.column_stack([
        *(floats(user_frame[c]) for c in USER_COLUMNS),
        # how far into the user's usual gap between orders they are now
        floats(user_frame["days_since_last_order"]) / floats(user_frame["mean_days_between_orders"]),
        segment[user_codes].astype(np.float64),
        categories.get_indexer(user_frame["top_category"]).astype(np.float64),
    ])
    item_side = np.column_stack([
        *(floats(item_frame[c]) for c in ITEM_COLUMNS),
        categories.get_indexer(item_frame["category"]).astype(np.float64),
    ])
    # a last row of NaN: what a code without features (get_indexer's -1) reads
    user_side = np.vstack([user_side, np.full(user_side.shape[1], np.nan)])
    item_side = np.vstack([item_side, np.full(item_side.shape[1], np.nan)])
    user_row, item_row = pd.Index(user_codes), pd.Index(item_frame[S.ITEM_ID].to_numpy(np.int64))
    for pairs in frame_batches(paths["user_item_features"], BATCH_PAIRS, coded_ids=True):
        rows, cols = pairs[S.USER_ID].to_numpy(np.int64), pairs[S.ITEM_ID].to_numpy(np.int64)
        if users is not None:
            kept = np.isin(rows, users)
            pairs, rows, cols = pairs[kept], rows[kept], cols[kept]
        of_user, of_item = user_side[user_row.get_indexer(rows)], item_side[item_row.get_indexer(cols)]
        X = np.empty((len(rows), len(FEATURES)))
        X[:, :n_user] = of_user[:, :n_user]
        X[:, n_user : n_user + n_item] = of_item[:, :n_item]
        at = n_user + n_item
        for j, c in enumerate(PAIR_COLUMNS):
            X[:, at + j] = floats(pairs[c])
        top, category = of_user[:, top_at], of_item[:, n_item]
        X[:, at + n_pair] = (top == category) & (top >= 0)  # a missing category is not the top one
        X[:, at + n_pair + 1] = of_user[:, gap]
        X[:, at + n_pair + 2] = of_user[:, segment_at]
        yield rows, cols, X


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


class ReorderRecommender(Recommender):
    name = "reorder"
    Config = ReorderConfig
    state = ("probability_", "orders_with_", "orders_since_", "user_orders_", "trained_on_")
    publishes_tables = True
    predicts_reorders = True
    folds_in = True
    heavy = True

    def __init__(self, config: ReorderConfig | None = None, seed: int = 42, segments: SegmentsConfig | None = None):
        super().__init__(config, seed)
        self.segments = segments if segments is not None else SegmentsConfig()

    @classmethod
    def from_settings(cls, settings) -> ReorderRecommender:
        """With the segments settings: the user's RFM segment is one of the features."""
        return cls(settings.models.reorder, seed=settings.seed, segments=settings.models.segments)

    def _fit(self, data: InteractionData) -> None:
        import lightgbm

        c = self.config
        types = list(data.positive_event_types)
        events = data.events
        basket_events = baskets(events, types)
        if not has_repeats(basket_events):
            raise ModelSkipped(
                "reorder skipped: no user has the same item in two orders (or on two days), so there is nothing to buy again"
            )
        labels = last_baskets(basket_events)
        in_label = basket_events.merge(labels[[S.USER_ID, "basket"]], on=[S.USER_ID, "basket"])
        del basket_events  # before the segments' fit: GBs at Instacart size
        user_ids, item_ids = data.user_ids, data.item_ids  # feature_inputs' codes are their positions
        label_pairs = index_of(user_ids, in_label[S.USER_ID]).astype(np.int64) * len(item_ids) + index_of(item_ids, in_label[S.ITEM_ID])
        del in_label
        earlier = before_labels(events, labels)
        # segments found before the labels; serving users are placed on the same centroids
        segments = SegmentsRecommender(self.segments, seed=self.seed).fit(
            InteractionData.build(events[earlier], data.items, data.users, InteractionsConfig(positive_event_types=types))
        )
        learners = np.asarray(labels[S.USER_ID].unique(), dtype=object)
        rng = np.random.default_rng(self.seed)
        if c.max_train_users is not None and len(learners) > c.max_train_users:  # at scale: learn from a sample of users
            learners = rng.choice(np.sort(learners), size=c.max_train_users, replace=False)
        with tempfile.TemporaryDirectory(prefix="recmill-reorder-") as work:
            paths = feature_files(feature_inputs(data, Path(work), earlier), types, c, Path(work))
            segment = np.append(segments.user_segment_, -1)[index_of(segments.user_ids_, user_ids)]
            batches = list(feature_batches(paths, segment, users=index_of(user_ids, learners)))
        train_users, train_items, X = (np.concatenate(part) for part in zip(*batches))
        del batches
        X = pd.DataFrame(X, columns=FEATURES, copy=False)
        y = np.isin(train_users * len(item_ids) + train_items, label_pairs)
        users = user_ids[pd.unique(train_users)]  # codes follow the ids' order: the draw is the ids'
        valid = np.isin(train_users, index_of(user_ids, rng.choice(users, size=int(round(len(users) * c.valid_users)), replace=False)))
        if y[~valid].all() or not y[~valid].any():
            raise ModelSkipped("reorder skipped: the label baskets hold no reorder (or nothing but reorders) to learn from")
        booster = lightgbm.LGBMClassifier(**booster_params(c.booster, self.seed))
        booster.fit(
            X[~valid], y[~valid], categorical_feature=["user_segment"],
            **early_stopping(c.booster, X[valid], y[valid], None, self.name),
        )
        self.booster_ = lightgbm.Booster(model_str=booster.booster_.model_to_string())
        self.trained_on_ = np.array([len(X), int(y.sum()), len(users)], dtype=np.int64)
        log.info("reorder: %d pairs of %d users, %d reordered; %d trees", len(X), len(users), y.sum(), self.booster_.current_iteration())
        del booster, X, y, valid, label_pairs  # every user's pairs are scored next: GBs at Instacart size

        self.segments_ = segments  # serving users are placed on its centroids, refreshed ones too
        self.item_values_ = None  # the item features of all the data, kept by _pair_state for refreshes
        state, self.feature_stats_ = self._pair_state(data)
        for name, value in state.items():
            setattr(self, name, value)

    def _user_state(self, data: InteractionData) -> dict[str, object]:
        return self._pair_state(data)[0]

    def _pair_state(self, data: InteractionData) -> tuple[dict[str, object], dict | None]:
        """Every (user, item bought before) pair of data scored, a batch at a time: the
        per-user attributes (probability_, orders_with_, orders_since_, user_orders_) for
        data's users, and the features' statistics for a fit (None for a refresh). The item features are the fit's once it
        has them (item_values_): a refresh's few users are not the item side."""
        if getattr(self, "segments_", None) is None or not hasattr(self, "item_values_"):
            raise RecmillError("this reorder fit predates refreshing (it lacks its segments); the next retrain makes one that can")
        types = list(data.positive_event_types)
        segment = self.segments_.assign(rfm_features(data, self.segments.top_categories, list(self.segments_.categories_))[0])  # by row
        parts = {name: [] for name in ("row", "col", "probability", "orders_with", "orders_since", "user_orders")}
        user_ids, item_ids = data.user_ids, data.item_ids
        row_of, col_of = index_of(self.user_ids_, user_ids), index_of(self.item_ids_, item_ids)  # code -> this model's row, column
        with tempfile.TemporaryDirectory(prefix="recmill-reorder-") as work:
            fitting = self.item_values_ is None  # a fit keeps its features' statistics; a refresh, the fit's
            paths = feature_files(feature_inputs(data, Path(work)), types, self.config, Path(work), stats=fitting)
            feature_stats = read_json(paths["feature_stats"]) if fitting else None
            items = read_frame(paths["item_features"], coded_ids=True)
            if fitting:
                by_code = items.set_index(S.ITEM_ID)[ITEM_COLUMNS].reindex(index_of(item_ids, self.item_ids_))
                self.item_values_ = by_code.to_numpy(np.float64)
            else:
                at = col_of[items[S.ITEM_ID].to_numpy(np.int64)]
                values = np.full((len(items), len(ITEM_COLUMNS)), np.nan)
                values[at >= 0] = self.item_values_[at[at >= 0]]
                items[ITEM_COLUMNS] = values
                write_frame(paths["item_features"], items)
            column = {name: j for j, name in enumerate(FEATURES)}
            for codes_users, codes_items, X in feature_batches(paths, segment):
                rows, cols = row_of[codes_users], col_of[codes_items]
                known = (rows >= 0) & (cols >= 0)
                X = X[known]
                # each part its own small array: a view of a column would keep the batch's whole block of features
                parts["row"].append(rows[known].astype(np.int32))
                parts["col"].append(cols[known].astype(np.int32))
                parts["probability"].append(self.booster_.predict(X))
                user_orders = X[:, column["user_n_orders"]]
                parts["orders_with"].append(np.rint(X[:, column["pair_order_share"]] * user_orders).astype(np.float32))
                parts["orders_since"].append(X[:, column["pair_orders_since_last"]].astype(np.float32) + 1)  # +1: a zero would vanish from the sparse matrix
                parts["user_orders"].append(user_orders.astype(np.float32))
        # each joined array replaces its batches' parts: not both at once
        joined = {name: np.concatenate(parts.pop(name)) if parts[name] else np.zeros(0) for name in list(parts)}
        rows, cols = joined.pop("row").astype(np.int64), joined.pop("col").astype(np.int64)
        shape = (len(self.user_ids_), len(self.item_ids_))

        def pair_matrix(values) -> sp.csr_matrix:
            m = sp.csr_matrix((np.asarray(values, dtype=np.float64), (rows, cols)), shape=shape)
            m.sort_indices()
            return m

        user_orders = np.zeros(shape[0])
        user_orders[rows] = joined["user_orders"]
        state = {"probability_": pair_matrix(joined["probability"]), "orders_with_": pair_matrix(joined["orders_with"]),
                 "orders_since_": pair_matrix(joined["orders_since"]), "user_orders_": user_orders}
        return state, feature_stats

    # ---- serving --------------------------------------------------------------------
    def _score(self, rows: np.ndarray) -> np.ndarray:
        # below every probability, by popularity (over the most popular item's count: a refresh's new users leave it as it is)
        scores = np.tile(self.popularity_ / max(1.0, self.popularity_.max()) - 1.0, (len(rows), 1))
        block = self.probability_[rows].tocoo()
        scores[block.row, block.col] = block.data
        return scores

    def _reasons(self, row: int, items: np.ndarray) -> list[str]:
        out = []
        for col in items:
            times, since = self.orders_with_[row, col], self.orders_since_[row, col]
            if not times:
                out.append(self._popular_reason(col))
            else:
                bought = f"you bought it in {int(times)} of your {int(self.user_orders_[row])} orders"
                out.append(f"{bought}, the last one included" if since == 1 else f"{bought}, last {plural(int(since) - 1, 'order')} ago")
        return out

    def reorder_probabilities(self, users=None) -> pd.DataFrame:
        """user_id, item_id, probability of every (user, item bought before) pair; all users when None."""
        self._check_fitted()
        rows = np.arange(len(self.user_ids_)) if users is None else self.user_rows(users)
        rows = rows[rows >= 0]
        coo = self.probability_[rows].tocoo()
        return pd.DataFrame({S.USER_ID: self.user_ids_[rows[coo.row]], S.ITEM_ID: self.item_ids_[coo.col], "probability": coo.data})

    def tables(self, users=None) -> dict[str, pd.DataFrame]:
        """buy_again: each user's max_per_user most probable items, rank 1 the most probable
        (of these users only, when given)."""
        m, user_ids = self.probability_, self.user_ids_
        if users is not None:
            rows = self.user_rows(users)
            m, user_ids = m[rows[rows >= 0]], user_ids[rows[rows >= 0]]
        row_of = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
        order = np.lexsort((m.indices, -m.data, row_of))  # per user: most probable first, ties by column
        per_user = np.minimum(np.diff(m.indptr), self.config.max_per_user)
        rank_in_user = np.arange(len(order)) - np.repeat(m.indptr[:-1], np.diff(m.indptr))
        keep = order[rank_in_user < np.repeat(per_user, np.diff(m.indptr))]
        frame = pd.DataFrame({
            S.USER_ID: user_ids[row_of[keep]], S.ITEM_ID: self.item_ids_[m.indices[keep]],
            "probability": m.data[keep], "rank": ranks(per_user),
        })
        return {"buy_again": frame}

    def training_metrics(self) -> dict[str, float]:
        pairs, positives, users = self.trained_on_
        return {"train_pairs": float(pairs), "train_reorder_share": float(positives / pairs), "train_users": float(users)}

    # ---- persistence ----------------------------------------------------------------

    def _save_extra(self, path: Path) -> None:
        self.booster_.save_model(str(path / "booster.txt"))
        (path / "feature_stats.json").write_text(json.dumps(self.feature_stats_, indent=2, sort_keys=True))
        self.segments_.save(path / "segments")
        np.savez(path / "item_values.npz", item_values=self.item_values_)

    def _load_extra(self, path: Path) -> None:
        import lightgbm

        self.booster_ = lightgbm.Booster(model_file=str(path / "booster.txt"))
        self.feature_stats_ = json.loads((path / "feature_stats.json").read_text())
        self.segments_ = SegmentsRecommender.load(path / "segments") if (path / "segments").is_dir() else None
        if (path / "item_values.npz").is_file():
            with np.load(path / "item_values.npz", allow_pickle=False) as saved:
                self.item_values_ = saved["item_values"]
