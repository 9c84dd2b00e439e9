"""The hybrid neural collaborative filter's inputs (recmill.models.ncf): each user's and
item's features, built from the data the network trains on, scaled to 0-1, with the
constants that scaled them (feature_stats.json)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recmill import schema as S
from recmill.arrays import unique_ints
from recmill.config import SegmentsConfig
from recmill.data.interactions import InteractionData
from recmill.models.base import text_array
from recmill.models.segments import SegmentsRecommender

TREND_DAYS = 7.0  # the window of the trending score
AGE_EDGES = [18, 25, 35, 45, 55, 65]
AGE_GROUPS = ["under 18", "18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
DAY = pd.Timedelta(days=1)


@dataclass
class Features:
    """The network's inputs, in row order of the users and items."""

    user: np.ndarray  # users x user features, float32, 0-1
    user_names: np.ndarray
    user_category: np.ndarray  # favourite category code, 0 for none
    item: np.ndarray  # items x item features, float32, 0-1
    item_names: np.ndarray
    item_category: np.ndarray  # 0 for none
    item_brand: np.ndarray  # 0 for none
    categories: np.ndarray  # code c names categories[c - 1]; empty: no category input
    brands: np.ndarray  # empty: no brand input

    def arrays(self) -> dict[str, np.ndarray]:
        return {f"features__{k}": v for k, v in vars(self).items()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Features:
        return cls(**{k.removeprefix("features__"): v for k, v in arrays.items() if k.startswith("features__")})


def aligned(table: pd.DataFrame, id_column: str, ids: np.ndarray) -> pd.DataFrame:
    """The table's rows in this id order; ids it lacks get empty rows."""
    if id_column not in table or not len(table):
        return pd.DataFrame(index=pd.Index(ids))
    table = table.drop_duplicates(id_column)
    return table.set_index(table[id_column].astype(str)).reindex(ids)


def present(table: pd.DataFrame, column: str) -> bool:
    return column in table and (text_array(table[column]) != "").any()


def codes(values) -> tuple[np.ndarray, np.ndarray]:
    """Codes 1..n of the distinct non-empty values (sorted), 0 for a missing one; and the values."""
    text = text_array(values)
    names = np.unique(text[text != ""])
    return np.where(text != "", np.searchsorted(names, text) + 1, 0).astype(np.int64), names


def one_hot(values, name: str) -> tuple[np.ndarray, list[str]]:
    code, names = codes(values)
    out = np.zeros((len(code), len(names)), np.float32)
    out[np.flatnonzero(code), code[code > 0] - 1] = 1
    return out, [f"{name}={v}" for v in names]


def age_groups(ages: pd.Series) -> np.ndarray:
    ages = pd.to_numeric(ages, errors="coerce").to_numpy(np.float64)
    groups = np.asarray(AGE_GROUPS)[np.digitize(np.nan_to_num(ages), AGE_EDGES)]
    return np.where(np.isnan(ages), "", groups)


def scaled(raw: dict[str, tuple[np.ndarray, str]], stats: dict) -> tuple[np.ndarray, list[str]]:
    """Columns scaled to 0-1: (transform(raw) - min) / (max - min), missing values at the
    median; recency is 1 - that, so recent is high. The constants go to stats."""
    columns = []
    for name, (values, transform) in raw.items():
        x = np.asarray(values, np.float64)
        x = np.log1p(x) if transform == "log1p" else x
        fill = float(np.nanmedian(x)) if np.isfinite(x).any() else 0.0
        x = np.where(np.isnan(x), fill, x)
        lo, hi = float(x.min()), float(x.max())
        unit = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
        columns.append(1 - unit if transform == "recency" else unit)
        stats[name] = {"transform": transform, "min": lo, "max": hi, "fill": fill}
    return np.column_stack(columns).astype(np.float32), list(raw)


def build_features(data: InteractionData, seed: int) -> tuple[Features, dict]:
    """The user and item features of this data (module docstring) and their scaling constants."""
    ev = data.events
    rows, cols = data.event_cells()
    positive = ev[S.EVENT_TYPE].isin(data.positive_event_types).to_numpy(bool)
    rating = ev[S.EVENT_TYPE].eq("rating").to_numpy(bool)
    days_ago = ((ev[S.TIMESTAMP].max() - ev[S.TIMESTAMP]) / DAY).to_numpy(np.float64)
    items = aligned(data.items, S.ITEM_ID, data.item_ids.astype(str))
    users = aligned(data.users, S.USER_ID, data.user_ids.astype(str))
    n_users, n_items = data.n_users, data.n_items
    stats = {"user": {}, "item": {}}

    item_category, categories = codes(items["category"]) if present(items, "category") else (np.zeros(n_items, np.int64), np.array([], str))
    item_brand, brands = codes(items["brand"]) if present(items, "brand") else (np.zeros(n_items, np.int64), np.array([], str))
    price = pd.to_numeric(items["price"], errors="coerce") if "price" in items else pd.Series(np.nan, index=items.index)
    raw = {}
    if price.notna().any():
        raw["price_percentile"] = (price.rank(pct=True).to_numpy(), "identity")
    raw["popularity"] = (np.bincount(data.positive.indices, minlength=n_items), "log1p")
    if rating.any():
        values = ev[S.VALUE].to_numpy(np.float64)[rating]
        sums, counts = np.bincount(cols[rating], values, n_items), np.bincount(cols[rating], minlength=n_items)
        raw["average_rating"] = (np.where(counts > 0, sums / np.maximum(counts, 1), values.mean()), "identity")
    if positive.any() and not positive.all():
        engaged = np.bincount(unique_ints(rows * n_items + cols) % n_items, minlength=n_items)
        raw["conversion_rate"] = ((np.bincount(data.positive.indices, minlength=n_items) + 1) / (engaged + 2), "identity")
    raw["trending"] = (np.bincount(cols[days_ago <= TREND_DAYS], minlength=n_items), "log1p")
    last = pd.Series(days_ago).groupby(cols).min().reindex(np.arange(n_items))
    raw["recency"] = (last.fillna(days_ago.max()).to_numpy(), "recency")
    item_matrix, item_names = scaled(raw, stats["item"])

    parts, user_names = [], []
    ages = users["age_group"] if present(users, "age_group") else age_groups(users["age"]) if present(users, "age") else None
    for name, values in (("age_group", ages), ("location", users["location"] if present(users, "location") else None)):
        if values is not None:
            matrix, names = one_hot(values, name)
            parts.append(matrix)
            user_names += names
    segments = SegmentsRecommender(SegmentsConfig(), seed=seed).fit(data)
    matrix, names = one_hot(segments.labels_[segments.user_segment_], "segment")
    parts.append(matrix)
    user_names += names
    rfm = pd.DataFrame(segments.features_, columns=segments.feature_names_)
    raw = {"purchases": (np.bincount(rows[positive], minlength=n_users), "log1p")}
    if price.notna().any() and positive.any():
        paid = price.to_numpy(np.float64)[cols[positive]]
        known = ~np.isnan(paid)
        spent = np.bincount(rows[positive][known], paid[known], n_users)
        bought = np.bincount(rows[positive][known], minlength=n_users)
        raw["average_price"] = (np.where(bought > 0, spent / np.maximum(bought, 1), np.nan), "identity")
    raw["recency"] = (rfm["recency_days"].to_numpy(), "recency")
    raw["frequency"] = (rfm["frequency"].to_numpy(), "log1p")
    matrix, names = scaled(raw, stats["user"])
    parts.append(matrix)
    user_names += names

    had = pd.DataFrame({"row": rows[positive], "code": item_category[cols[positive]]})
    counts = had[had["code"] > 0].value_counts().reset_index(name="n")
    favourite = counts.sort_values(["row", "n", "code"], ascending=[True, False, True]).drop_duplicates("row")  # ties: lowest code
    user_category = np.zeros(n_users, np.int64)
    user_category[favourite["row"].to_numpy()] = favourite["code"].to_numpy()

    features = Features(
        user=np.hstack(parts).astype(np.float32), user_names=text_array(user_names), user_category=user_category,
        item=item_matrix, item_names=text_array(item_names), item_category=item_category, item_brand=item_brand,
        categories=categories, brands=brands,
    )
    return features, stats
