"""K-Means RFM segmentation: users grouped by how recently, how often and how much they buy.

Features per user, from the positive events (bought, rated) of the training data:

- ``recency_days``: days from the user's last positive event to the latest event in the data;
- ``frequency``: distinct orders (order_id), counting a day with positive events and no
  order_id as one order, so rating data counts active days;
- ``monetary``: the summed item prices of purchase events when the items table has prices,
  otherwise the summed values of the positive events (the ratings);
- ``basket_size``: mean distinct items per order (per active day);
- one share per category among the ``top_categories`` most common ones: the user's share
  of positive events in it (no shares when items have no category).

Users with no positive events get the largest recency and zeros elsewhere. Recency,
frequency and monetary are right-skewed (a few very loyal or big-spending users), so they
enter the clustering as log1p; everything is then standardised and clustered with K-Means.
With ``k`` unset, K-Means and the silhouette score are computed on a seeded sample of at
most ``silhouette_sample`` users for every k in k_min..k_max, and the best k is fitted on
everyone. Segments are numbered by size, largest first.

Labels compare a segment's means (original units) with the means of all users, in order:

1. a single segment: "all customers";
2. frequency below 0.5 (mostly users who only browsed): "no purchases yet";
3. recency at least 1.5 times the average: "lapsed";
4. frequency at least the average: "frequent big baskets", "frequent small baskets" or
   "frequent shoppers", as basket size is at least 1.1 times the average, at most 0.9
   times, or in between;
5. monetary at least 1.5 times the average: "high spenders";
6. frequency below 1.5: "new customers" when recency is at most 0.6 times the average,
   otherwise "one-off buyers";
7. basket size at least 1.1 times the average: "occasional big baskets";
8. recency at most 0.6 times the average: "recent occasional shoppers";
9. monetary at most half the average: "occasional low spenders";
10. otherwise "occasional shoppers".

A segment is category-led when a category's share is at least twice its population share
and at least 15%: " / <category> lovers" is appended (the largest such lift). Repeated
labels get " 2", " 3"... in segment order, so the largest segment keeps the plain label.

As a recommender, a user gets the items most users of their segment have; the
``items_per_segment`` best of each segment rank above every other item, which follow by
overall popularity.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from recmill import schema as S
from recmill.arrays import distinct_per_row
from recmill.config import SegmentsConfig
from recmill.data.interactions import InteractionData, factorized
from recmill.models.base import Recommender, text_array, top_k

N_INIT = 10
RFM = ["recency_days", "frequency", "monetary"]
BEHAVIOUR = [*RFM, "basket_size"]
LAPSED_RECENCY, RECENT = 1.5, 0.6  # x the average recency
HIGH_SPEND, LOW_SPEND = 1.5, 0.5  # x the average spend
BIG_BASKET, SMALL_BASKET = 1.1, 0.9  # x the average basket size
CATEGORY_LIFT = 2.0  # x the population share
CATEGORY_SHARE = 0.15


def rfm_features(data: InteractionData, top_categories: int, chosen_names: list[str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Behaviour features (BEHAVIOUR columns, then one share per category) of every user of
    ``data`` in row order, and the category names: the top_categories most bought in data,
    or ``chosen_names`` (those a fitted model placed users by)."""
    events = data.events
    positive = events[S.EVENT_TYPE].isin(data.positive_event_types).to_numpy(bool)
    every_event = positive.all()

    def of_positive(values: np.ndarray) -> np.ndarray:  # one column at a time: no copy of the events
        return values if every_event else values[positive]

    items = data.items.set_index(data.items[S.ITEM_ID].astype(str)) if len(data.items) else pd.DataFrame()
    row, cols = (of_positive(cells) for cells in data.event_cells())
    # a basket is the order, or the day for events without one: codes, not a string per event
    order = of_positive(factorized(events[S.ORDER_ID])[0]) if S.ORDER_ID in events else np.full(len(cols), -1)
    day = of_positive(events[S.TIMESTAMP].to_numpy("datetime64[D]").astype(np.int64))
    is_purchase = of_positive(events[S.EVENT_TYPE].eq("purchase").to_numpy(bool))
    prices = pd.to_numeric(items["price"], errors="coerce") if "price" in items else pd.Series(dtype=float)
    if prices.notna().any() and is_purchase.any():
        spend = np.where(is_purchase, prices.reindex(data.item_ids).fillna(0.0).to_numpy()[cols], 0.0)
    else:
        spend = of_positive(events["value"].fillna(0.0).to_numpy(np.float64))
    # per-user sums and counts over arrays: a frame of these columns, grouped, copies them
    # and hashes each (GBs at tens of millions of events)
    basket = np.where(order >= 0, order, -(day + 1))  # days (from 1970-01-02 on) below zero
    events_per_user = np.bincount(row, minlength=data.n_users)
    last = np.full(data.n_users, np.iinfo(np.int64).min)  # NaT for users without a positive event
    np.maximum.at(last, row, of_positive(events[S.TIMESTAMP].to_numpy("datetime64[ns]").view(np.int64)))
    recency = (events[S.TIMESTAMP].max() - pd.Series(last.view("datetime64[ns]"))).dt.total_seconds() / 86_400
    frequency = pd.Series(distinct_per_row(data.n_users, row, basket))
    basket_items = distinct_per_row(data.n_users, row, basket, cols)
    features = pd.DataFrame(
        {
            "recency_days": recency.fillna(recency.max() if recency.notna().any() else 0.0),
            "frequency": frequency.astype(np.float64),
            "monetary": pd.Series(spend).groupby(row).sum().reindex(range(data.n_users), fill_value=0.0),  # compensated sums
            "basket_size": (basket_items / frequency.replace(0, 1)).astype(np.float64),
        }
    )
    # category codes per catalogue item, then per event: a string per event would take GBs
    item_category = text_array(items["category"].reindex(data.item_ids)) if "category" in items else np.full(data.n_items, "")
    category_codes, categories = pd.factorize(item_category)
    event_category = category_codes[cols]
    counts = np.bincount(event_category, minlength=len(categories))
    if chosen_names is None:
        named = [j for j in range(len(categories)) if categories[j] != "" and counts[j] > 0]
        chosen = sorted(named, key=lambda j: (-counts[j], categories[j]))[:top_categories]
        names = [str(categories[j]) for j in chosen]
    else:
        names = list(chosen_names)
        features[names] = 0.0
    if names:
        col = np.full(len(categories), -1)
        position = {str(name): n for n, name in enumerate(names)}
        for j, name in enumerate(categories):
            col[j] = position.get(str(name), -1)
        col = col[event_category]
        inside = col >= 0
        cells = row[inside] * len(names) + col[inside]
        per_user = np.bincount(cells, minlength=data.n_users * len(names)).reshape(data.n_users, len(names)).astype(np.float64)
        totals = np.maximum(events_per_user, 1)
        features[names] = per_user / totals[:, None]
    return features.set_index(pd.Index(data.user_ids.astype(str), name=S.USER_ID)), names


def model_inputs(features: np.ndarray) -> np.ndarray:
    """Original-unit features -> what the scaler sees: log1p of recency, frequency, monetary."""
    out = np.array(features, dtype=np.float64)
    out[:, : len(RFM)] = np.log1p(out[:, : len(RFM)])
    return out


def feature_weights(n_categories: int) -> np.ndarray:
    """Multipliers of the standardised features: the category shares together weigh as much
    as one behaviour feature, so segments follow behaviour first."""
    return np.concatenate([np.ones(len(BEHAVIOUR)), np.full(n_categories, 1 / np.sqrt(max(n_categories, 1)))])


def choose_k(x: np.ndarray, cfg: SegmentsConfig, seed: int) -> int:
    """config.k (at most the number of distinct users), or the best silhouette over
    k_min..k_max on a seeded sample, skipping k above the sample size - 1 or its distinct
    users; 1 when no k is left (fewer than 3 users, or all alike)."""
    distinct = len(np.unique(x, axis=0))
    if cfg.k is not None:
        return min(cfg.k, distinct)
    rng = np.random.default_rng(seed)
    sample = x[np.sort(rng.choice(len(x), size=min(len(x), cfg.silhouette_sample), replace=False))]
    best_k, best_score = 1, -np.inf
    for k in range(cfg.k_min, min(cfg.k_max, len(sample) - 1, len(np.unique(sample, axis=0))) + 1):
        labels = KMeans(k, n_init=N_INIT, random_state=seed).fit_predict(sample)
        score = silhouette_score(sample, labels)
        if score > best_score:
            best_k, best_score = k, score
    return best_k


def segment_labels(features: pd.DataFrame, segment: np.ndarray, categories: list[str]) -> list[str]:
    """Readable label of each segment 0..n-1 (rules in the module docstring)."""
    means = features.groupby(segment).mean()
    population = features.mean()
    if len(means) == 1:
        return ["all customers"]
    labels, used = [], {}
    for _, seg in means.iterrows():
        relative = seg[BEHAVIOUR] / population[BEHAVIOUR].replace(0, np.inf)
        baskets = "big baskets" if relative["basket_size"] >= BIG_BASKET else "small baskets" if relative["basket_size"] <= SMALL_BASKET else "shoppers"
        if seg["frequency"] < 0.5:
            label = "no purchases yet"
        elif relative["recency_days"] >= LAPSED_RECENCY:
            label = "lapsed"
        elif relative["frequency"] >= 1:
            label = f"frequent {baskets}"
        elif relative["monetary"] >= HIGH_SPEND:
            label = "high spenders"
        elif seg["frequency"] < 1.5:
            label = "new customers" if relative["recency_days"] <= RECENT else "one-off buyers"
        elif baskets == "big baskets":
            label = "occasional big baskets"
        elif relative["recency_days"] <= RECENT:
            label = "recent occasional shoppers"
        elif relative["monetary"] <= LOW_SPEND:
            label = "occasional low spenders"
        else:
            label = "occasional shoppers"
        if categories:
            lift = seg[categories] / population[categories].replace(0, np.inf)
            led = lift[(lift >= CATEGORY_LIFT) & (seg[categories] >= CATEGORY_SHARE)]
            if len(led):
                label += f" / {led.idxmax()} lovers"
        used[label] = used.get(label, 0) + 1
        labels.append(label if used[label] == 1 else f"{label} {used[label]}")
    return labels


def category_summary(shares: pd.Series) -> str:
    """'produce 31%, dairy eggs 18%, snacks 9%': the three largest non-zero shares."""
    top = shares[shares > 0].sort_values(ascending=False, kind="stable")[:3]
    return ", ".join(f"{name} {share:.0%}" for name, share in top.items())


class SegmentsRecommender(Recommender):
    name = "segments"
    Config = SegmentsConfig
    state = (
        "centroids_", "scaler_mean_", "scaler_scale_", "user_segment_", "segment_scores_", "labels_", "features_",
        "feature_names_", "categories_",
    )
    publishes_tables = True

    def _fit(self, data: InteractionData) -> None:
        features, categories = rfm_features(data, self.config.top_categories)
        x = model_inputs(features.to_numpy())
        scaler = StandardScaler().fit(x)
        z = scaler.transform(x) * feature_weights(len(categories))
        # one thread: K-Means' OpenMP threads fight over a busy machine (50x slower at 2 cores)
        with threadpool_limits(1):
            k = choose_k(z, self.config, self.seed)
            kmeans = KMeans(k, n_init=N_INIT, random_state=self.seed).fit(z)
        # number segments by size, largest first
        sizes = np.bincount(kmeans.labels_, minlength=k)
        order = np.lexsort((np.arange(k), -sizes))
        order = order[sizes[order] > 0]
        number = np.full(k, -1, dtype=np.int64)
        number[order] = np.arange(len(order))
        self.user_segment_ = number[kmeans.labels_]
        self.centroids_ = kmeans.cluster_centers_[order]
        self.scaler_mean_, self.scaler_scale_ = scaler.mean_, scaler.scale_
        self.features_ = features.to_numpy(np.float64)
        self.feature_names_ = text_array(features.columns)
        self.categories_ = text_array(categories)
        self.labels_ = text_array(segment_labels(features, self.user_segment_, categories))
        self.segment_scores_ = self._segment_scores(data.positive)

    def _segment_scores(self, positive: sp.csr_matrix) -> np.ndarray:
        """Per segment and item: the segment's users who have it, for its items_per_segment
        best, plus overall popularity scaled below 1 (orders the rest and breaks ties)."""
        n_users = positive.shape[0]
        members = sp.csr_matrix((np.ones(n_users), (self.user_segment_, np.arange(n_users))), shape=(len(self.labels_), n_users))
        counts = (members @ positive).toarray()
        tie_break = self.popularity_ / (self.popularity_.max() + 1)
        top, _ = top_k(counts + tie_break, self.config.items_per_segment)
        kept = np.zeros(counts.shape, dtype=bool)
        kept[np.arange(len(counts))[:, None], top] = True
        return np.where(kept, counts, 0.0) + tie_break

    def _score(self, rows: np.ndarray) -> np.ndarray:
        return self.segment_scores_[self.user_segment_[rows]]

    def _reasons(self, row: int, items: np.ndarray) -> list[str]:
        segment = self.user_segment_[row]
        kept = self.segment_scores_[segment] >= 1
        why = f"popular with shoppers like you ({self.labels_[segment]})"
        return [why if kept[col] else self._popular_reason(col) for col in items]

    def segment_of(self, user_ids) -> np.ndarray:
        """Segment number of each user; -1 for users the model has not seen."""
        self._check_fitted()
        rows = self.user_rows(user_ids)
        return np.where(rows >= 0, self.user_segment_[rows], -1)

    def tables(self) -> dict[str, pd.DataFrame]:
        """user_segments (one row per user) and segment_profiles (one row per segment, means
        of its users in original units)."""
        self._check_fitted()
        features = pd.DataFrame(self.features_, columns=self.feature_names_)
        segment = pd.Series(self.user_segment_, name="segment")
        users = pd.DataFrame({S.USER_ID: self.user_ids_, "segment": segment.astype(np.int32), "label": self.labels_[segment]})
        users[RFM] = features[RFM]
        means = features.groupby(segment).mean()
        profiles = pd.DataFrame(
            {
                "segment": means.index.astype(np.int32),
                "label": self.labels_,
                "size": np.bincount(segment, minlength=len(self.labels_)).astype(np.int32),
            }
        )
        profiles[BEHAVIOUR] = means[BEHAVIOUR].to_numpy()
        profiles["top_categories"] = [category_summary(row) for _, row in means[list(self.categories_)].iterrows()]
        return {"user_segments": users, "segment_profiles": profiles}

    def assign(self, features: pd.DataFrame) -> np.ndarray:
        """Nearest segment of users described by rfm_features() columns (original units),
        e.g. the same users on later data."""
        self._check_fitted()
        x = model_inputs(features[list(self.feature_names_)].to_numpy())
        z = (x - self.scaler_mean_) / self.scaler_scale_ * feature_weights(len(self.categories_))
        return ((z[:, None, :] - self.centroids_[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
