"""Hybrid neural collaborative filter: collaborative embeddings and content features in one network.

Network. The collaborative branch is a user and an item embedding of ``embedding_dim``.
The content branch passes each side's features through a dense layer with ReLU:
``user_dense`` units over the user features, ``item_dense`` units over the item features.
The fusion concatenates [user embedding, user dense, item embedding, item dense] and runs
it through the ``hidden`` layers (ReLU each, dropout after all but the last) to one output;
its sigmoid is the score. Features are built from the data the network trains on and
only when the data has them (a missing attribute is left out, never filled in):

- user: one-hot age group (``age_group``, or ``age`` in bins), location, and customer
  segment (a SegmentsRecommender with the default SegmentsConfig and the same seed);
  purchases (positive events, log) and average price of the items bought; recency and
  frequency, the segments' RFM definitions scaled to 0-1; the favourite category (most
  positive events) through a category embedding of ``category_embedding_dim``, shared
  with the items.
- item: category embedding; brand embedding of ``brand_embedding_dim``; price percentile;
  popularity (users who have it, log); average rating (with rating events); conversion
  rate (users who have it over users with any event on it, smoothed; when some events
  are not positive); trending (events in the last TREND_DAYS days, log); recency.

Every numeric feature is min-max scaled to 0-1 after its transform (log1p for counts,
1 - scaled days for recency); a value missing for some users or items gets the median;
feature_stats.json keeps the constants.

Training. Each user's last ``valid_fraction`` of events validates; the network trains on
the rest. Every epoch each pair the user has is a positive (label 1) with ``negatives``
items drawn uniformly from those the user does not have (label 0), redrawn each epoch.
Loss: MSE of the sigmoid (mse), cross-entropy (bce), or for bpr -log sigmoid(positive -
negative logit) over (positive, negative) pairs; Adam with weight decay, ``batch_size``
samples a step. An embedding table above ``sparse_above_rows`` rows (users at Instacart
size) gets sparse gradients and SparseAdam without weight decay, so a step costs the same
at 6,000 users or 200,000.
ReduceLROnPlateau and early stopping follow the validation NDCG@10 (held-out items the
user did not have before, ranked among the items the user does not have, or among a
seeded sample of ``valid_items`` of them in a larger catalogue); an epoch counts as
better only when it beats the best by ``min_improvement`` (a share), since one
epoch's NDCG on a thousand users moves by a few percent by chance; the best
epoch's weights are the model. With ``checkpoint_dir`` set, every epoch writes a checkpoint (weights, optimiser,
scheduler, random states, history) and a training with the same data, config and seed
resumes from it. On CPU a rerun gives the identical model: seeded torch and numpy
generators, no data loader, one thread.

Scoring all items splits the first fusion layer into a user part and an item part, each
computed once, and runs the rest over chunks of users x items.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from recmill import schema as S
from recmill.config import InteractionsConfig, NCFConfig, SegmentsConfig
from recmill.data.interactions import InteractionData, index_of
from recmill.data.split import label_positives, label_split
from recmill.errors import RecmillError
from recmill.evaluation.metrics import mean_over_users
from recmill.models.base import SCORE_CELLS, Recommender, mask_seen, text_array, top_k, unit_rows
from recmill.models.segments import SegmentsRecommender

log = logging.getLogger("recmill")
VALID_K = 10
TREND_DAYS = 7.0  # the window of the trending score
AGE_EDGES = [18, 25, 35, 45, 55, 65]
AGE_GROUPS = ["under 18", "18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
CHECKPOINT_FORMAT = b"optimizer-list"  # in the fingerprint: a checkpoint of another layout is another training
CHUNK_PAIRS = 65_536  # user x item pairs through the fusion layers at once when scoring all items
# one thread: sums in a fixed order, so a CPU run repeats exactly (deterministic algorithms
# add nothing then, at a fifth more time), and two threads stall on two shared cores
THREADS = 1
CHECKPOINT = "checkpoint.pt"
DAY = pd.Timedelta(days=1)


# ---- features -----------------------------------------------------------------------
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
    rows = index_of(data.user_ids, ev[S.USER_ID])
    cols = index_of(data.item_ids, ev[S.ITEM_ID])
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
        engaged = np.bincount(np.unique(rows * n_items + cols) % n_items, minlength=n_items)
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


# ---- network ------------------------------------------------------------------------
class NCFNet(nn.Module):
    """The two branches and the fusion layers; forward() returns logits, the score is their
    sigmoid. The feature tables are buffers outside the state_dict (they live in state.npz)."""

    def __init__(self, cfg: NCFConfig, features: Features):
        super().__init__()
        for name in ("user", "user_category", "item", "item_category", "item_brand"):
            self.register_buffer(name, torch.as_tensor(getattr(features, name)), persistent=False)
        n_users, n_items = len(features.user), len(features.item)
        # a large table gets sparse gradients: a step updates the rows of its batch, not every row
        self.user_embedding = nn.Embedding(n_users, cfg.embedding_dim, sparse=n_users > cfg.sparse_above_rows)
        self.item_embedding = nn.Embedding(n_items, cfg.embedding_dim, sparse=n_items > cfg.sparse_above_rows)
        has_category, has_brand = len(features.categories) > 0, len(features.brands) > 0
        self.category_embedding = (
            nn.Embedding(len(features.categories) + 1, cfg.category_embedding_dim, padding_idx=0) if has_category else None
        )
        self.brand_embedding = nn.Embedding(len(features.brands) + 1, cfg.brand_embedding_dim, padding_idx=0) if has_brand else None
        category_width = cfg.category_embedding_dim if has_category else 0
        self.user_dense = nn.Linear(features.user.shape[1] + category_width, cfg.user_dense)
        brand_width = cfg.brand_embedding_dim if has_brand else 0
        self.item_dense = nn.Linear(features.item.shape[1] + category_width + brand_width, cfg.item_dense)
        widths = [2 * cfg.embedding_dim + cfg.user_dense + cfg.item_dense, *cfg.hidden]
        layers = []
        for n, (width_in, width_out) in enumerate(zip(widths, widths[1:])):
            layers += [nn.Linear(width_in, width_out), nn.ReLU()]
            if n < len(cfg.hidden) - 1:
                layers.append(nn.Dropout(cfg.dropout))
        self.fusion = nn.Sequential(*layers, nn.Linear(widths[-1], 1))
        self.user_width = cfg.embedding_dim + cfg.user_dense

    def user_side(self, users: torch.Tensor) -> torch.Tensor:
        x = self.user[users]
        if self.category_embedding is not None:
            x = torch.cat([x, self.category_embedding(self.user_category[users])], 1)
        return torch.cat([self.user_embedding(users), F.relu(self.user_dense(x))], 1)

    def item_side(self, items: torch.Tensor) -> torch.Tensor:
        x = [self.item[items]]
        if self.category_embedding is not None:
            x.append(self.category_embedding(self.item_category[items]))
        if self.brand_embedding is not None:
            x.append(self.brand_embedding(self.item_brand[items]))
        return torch.cat([self.item_embedding(items), F.relu(self.item_dense(torch.cat(x, 1)))], 1)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.fusion(torch.cat([self.user_side(users), self.item_side(items)], 1)).squeeze(1)

    def score_all(self, users: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of every item (or of these items) for these users, (len(users), n_items): the
        first fusion layer is W [user side, item side] + b = W_u user side + (W_i item side + b),
        so each part is computed once and only the later layers see users x items, a chunk at
        a time."""
        first = self.fusion[0]
        user_part = self.user_side(users) @ first.weight[:, : self.user_width].T
        if items is None:
            items = torch.arange(len(self.item), device=users.device)
        item_part = self.item_side(items) @ first.weight[:, self.user_width :].T + first.bias
        out = torch.empty(len(users), len(items), device=users.device)
        step = max(1, CHUNK_PAIRS // len(items))
        for start in range(0, len(users), step):
            hidden = user_part[start : start + step, None, :] + item_part[None, :, :]
            out[start : start + step] = self.fusion[1:](hidden).squeeze(-1)
        return out


# ---- training -----------------------------------------------------------------------
def resolve_device(device: str) -> torch.device:
    if device == "cuda" and not torch.cuda.is_available():
        raise RecmillError("model 'ncf': models.ncf.device is 'cuda' but CUDA is not available here; use 'auto' or 'cpu'")
    return torch.device("cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu")


def sample_negatives(positive: sp.csr_matrix, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each entry of rows, an item drawn uniformly from those that user does not have
    (every user in rows must lack some item). The r-th item a user lacks is r plus the
    number of their items a_j with a_j - j <= r (j: the item's place in their sorted list)."""
    n_users, n_items = positive.shape
    counts = np.diff(positive.indptr)
    r = rng.integers(0, n_items - counts[rows])
    owner = np.repeat(np.arange(n_users, dtype=np.int64), counts)
    place = np.arange(positive.nnz) - np.repeat(positive.indptr[:-1], counts)
    keys = owner * n_items + (positive.indices - place)  # sorted: owners ascending, a_j - j non-decreasing
    below = np.searchsorted(keys, rows.astype(np.int64) * n_items + r, side="right") - positive.indptr[rows]
    return r + below


def epoch_samples(
    positive: sp.csr_matrix, negatives: int, pairwise: bool, rng: np.random.Generator, max_pairs: int | None = None
) -> tuple[np.ndarray, ...]:
    """One epoch's samples in a random order: (user, item, label) with label 1 for each pair
    the user has and 0 for ``negatives`` sampled items per pair; pairwise, (user, item the
    user has, sampled item) triples. Users who have every item get no negatives. With
    ``max_pairs``, only that many of the pairs (drawn without replacement) make the epoch."""
    coo = positive.tocoo()
    coo_rows, coo_cols = coo.row.astype(np.int64), coo.col.astype(np.int64)
    if max_pairs is not None and coo.nnz > max_pairs:
        kept = np.sort(rng.choice(coo.nnz, size=max_pairs, replace=False))
        coo_rows, coo_cols = coo_rows[kept], coo_cols[kept]
    rows, cols = np.repeat(coo_rows, negatives), np.repeat(coo_cols, negatives)
    able = np.diff(positive.indptr)[rows] < positive.shape[1]
    rows, cols = rows[able], cols[able]
    drawn = sample_negatives(positive, rows, rng)
    if pairwise:
        order = rng.permutation(len(rows))
        return rows[order], cols[order], drawn[order]
    users, items = np.concatenate([coo_rows, rows]), np.concatenate([coo_cols, drawn])
    labels = np.concatenate([np.ones(len(coo_rows), np.float32), np.zeros(len(rows), np.float32)])
    order = rng.permutation(len(users))
    return users[order], items[order], labels[order]


def batch_loss(net: NCFNet, loss: str, users: torch.Tensor, items: torch.Tensor, third: torch.Tensor) -> torch.Tensor:
    if loss == "bpr":
        return -F.logsigmoid(net(users, items) - net(users, third)).mean()
    logits = net(users, items)
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(logits, third)
    return F.mse_loss(torch.sigmoid(logits), third)


def ranked(
    net: NCFNet, positive: sp.csr_matrix, rows: np.ndarray, k: int, device: torch.device, cols: np.ndarray | None = None
) -> np.ndarray:
    """Each user's k best columns among the items they do not have (of ``cols`` only, sorted,
    when given), a block of users at a time."""
    cols = np.arange(positive.shape[1]) if cols is None else cols
    candidates = torch.as_tensor(cols, device=device)
    out = []
    step = max(1, SCORE_CELLS // len(cols))
    with torch.no_grad():
        for start in range(0, len(rows), step):
            batch = rows[start : start + step]
            scores = net.score_all(torch.as_tensor(batch, device=device), candidates).cpu().numpy().astype(np.float64)
            mask_seen(scores, positive[batch] if len(cols) == positive.shape[1] else positive[batch][:, cols])
            out.append(cols[top_k(scores, k)[0]])
    return np.concatenate(out) if out else np.zeros((0, k), np.int64)


def validation_columns(truth: dict[int, set], n_items: int, valid_items: int | None, seed: int) -> np.ndarray | None:
    """The items validation ranks among: all (None) up to valid_items, else a seeded sample of
    that many with every held-out item added."""
    if valid_items is None or n_items <= valid_items:
        return None
    sample = np.random.default_rng([seed, 2]).choice(n_items, size=valid_items, replace=False)
    return np.union1d(sample, np.fromiter((c for items in truth.values() for c in items), dtype=np.int64))


def validation_ndcg(net: NCFNet, positive: sp.csr_matrix, truth: dict[int, set], device: torch.device, cols=None) -> float:
    rows = np.array(sorted(truth), dtype=np.int64)
    top = ranked(net, positive, rows, VALID_K, device, cols)
    return mean_over_users("ndcg", truth, dict(zip(rows.tolist(), top.tolist())), VALID_K)


def optimizers(net: NCFNet, cfg: NCFConfig) -> list[torch.optim.Optimizer]:
    """Fused Adam with weight decay, and SparseAdam (no weight decay) on the embedding tables
    above ``sparse_above_rows`` rows. Dense Adam touches every row each step, which costs as
    much as the table is large, but ranks better: its weight decay, scaled by Adam, shrinks
    the rarely drawn users' and items' vectors a little every step."""
    tables = [e.weight for e in (net.user_embedding, net.item_embedding) if e.sparse]
    rest = [p for p in net.parameters() if all(p is not t for t in tables)]
    dense = torch.optim.Adam(rest, lr=cfg.learning_rate, betas=cfg.betas, weight_decay=cfg.weight_decay, fused=True)
    return [dense, torch.optim.SparseAdam(tables, lr=cfg.learning_rate, betas=cfg.betas)] if tables else [dense]


def train_epoch(net: NCFNet, optimizers: list[torch.optim.Optimizer], samples: list[torch.Tensor], loss: str, batch_size: int) -> float:
    """One pass over the samples, batch_size at a time; the mean loss."""
    net.train()
    total = torch.zeros((), device=samples[0].device)  # summed on the device: no sync each step
    for start in range(0, len(samples[0]), batch_size):
        batch = [a[start : start + batch_size] for a in samples]
        value = batch_loss(net, loss, *batch)
        for optimizer in optimizers:
            optimizer.zero_grad()
        value.backward()
        for optimizer in optimizers:
            optimizer.step()
        total += value.detach() * len(batch[0])
    net.eval()
    return float(total) / max(len(samples[0]), 1)


def resume(path: Path, key: str, net: NCFNet, optimizers, schedulers, rng: np.random.Generator, device: torch.device):
    """(run, best weights) of the checkpoint at path, with the network, optimiser, scheduler
    and generators back in its state; None when it holds another training."""
    saved = torch.load(path, weights_only=True, map_location="cpu")
    if saved["fingerprint"] != key:
        log.warning("ncf: %s is the checkpoint of another training; starting afresh", path)
        return None
    net.load_state_dict(saved["net"])
    for optimizer, state in zip(optimizers, saved["optimizers"], strict=True):
        optimizer.load_state_dict(state)
    for scheduler, state in zip(schedulers, saved["schedulers"], strict=True):
        scheduler.load_state_dict(state)
    torch.set_rng_state(saved["torch_rng"])
    if device.type == "cuda":
        torch.cuda.set_rng_state(saved["cuda_rng"], device)
    rng.bit_generator.state = saved["numpy_rng"]
    log.info("ncf: resuming after epoch %d from %s", saved["run"]["epoch"], path)
    return saved["run"], saved["best"]


def save_checkpoint(path: Path, checkpoint: dict) -> None:
    """Written beside and renamed into place: an interrupted write leaves the last one whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    torch.save(checkpoint, partial)
    partial.replace(path)


@contextmanager
def subnormals_flushed():
    """Subnormal floats read and written as zero inside (off again after: the default).
    Weights that only weight decay moves shrink towards zero until they are subnormal, and
    the CPU takes a slow path for each operation on one: an epoch took four times as long
    by the fifth, and scoring slowed alike."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


@contextmanager
def reproducible(seed: int, device: torch.device):
    """Seeded torch generators, THREADS threads and subnormals flushed inside; the caller's
    random state and thread count back afterwards."""
    threads = torch.get_num_threads()
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), subnormals_flushed():
        torch.manual_seed(seed)
        torch.set_num_threads(THREADS)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


def fingerprint(cfg: NCFConfig, seed: int, positive: sp.csr_matrix, features: Features) -> str:
    """What makes two trainings the same one: config (but where it runs and checkpoints),
    seed, training pairs and features."""
    h = hashlib.sha256(cfg.model_dump_json(exclude={"device", "checkpoint_dir"}).encode() + str(seed).encode() + CHECKPOINT_FORMAT)
    for a in (positive.indptr, positive.indices, *features.arrays().values()):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


class NCFRecommender(Recommender):
    name = "ncf"
    Config = NCFConfig
    heavy = True

    def _fit(self, data: InteractionData) -> None:
        cfg = self.config
        self.device_ = resolve_device(cfg.device)
        earlier_events, valid_events = label_split(data.events, cfg.valid_fraction)
        # the whole catalogue, so the earlier data has the same columns; every user keeps an earlier event, so the same rows
        catalogue = data.catalogue()
        earlier = InteractionData.build(
            earlier_events, catalogue, data.users, InteractionsConfig(positive_event_types=list(data.positive_event_types))
        )
        if earlier.positive.nnz == 0:
            raise RecmillError("model 'ncf' found no pairs a user has (bought, rated) to train on")
        self.features_, self.feature_stats_ = build_features(earlier, self.seed)
        held_out = label_positives(earlier_events, valid_events, data.positive_event_types)
        truth = pd.DataFrame(
            {"r": self.user_rows(held_out[S.USER_ID]), "c": self.item_cols(held_out[S.ITEM_ID])}
        ).groupby("r")["c"].agg(set).to_dict()
        if cfg.valid_max_users is not None and len(truth) > cfg.valid_max_users:
            kept = np.random.default_rng(self.seed).choice(sorted(truth), size=cfg.valid_max_users, replace=False)
            truth = {int(r): truth[r] for r in sorted(kept)}
        started = time.perf_counter()
        with reproducible(self.seed, self.device_):
            self.net_ = NCFNet(cfg, self.features_).to(self.device_)
            self.history_ = self._train(earlier.positive, truth)
        self.history_.update(device=str(self.device_), seconds=round(time.perf_counter() - started, 2))
        self.net_.eval()

    def _train(self, positive: sp.csr_matrix, truth: dict[int, set]) -> dict:
        """Epochs until ``epochs`` or ``patience`` epochs without a better validation NDCG@10;
        leaves the best epoch's weights in the network and returns the history."""
        cfg, net, device = self.config, self.net_, self.device_
        valid_cols = validation_columns(truth, positive.shape[1], cfg.valid_items, self.seed)
        steppers = optimizers(net, cfg)
        schedulers = [
            torch.optim.lr_scheduler.ReduceLROnPlateau(
                o, mode="max", factor=cfg.lr_factor, patience=cfg.lr_patience, min_lr=cfg.min_lr, threshold=cfg.min_improvement, threshold_mode="rel"
            )
            for o in steppers
        ]
        rng = np.random.default_rng(self.seed)
        run = {"epoch": 0, "epochs": [], "best_epoch": 0, "best_ndcg": -np.inf, "stale": 0}
        best = None
        path = Path(cfg.checkpoint_dir) / CHECKPOINT if cfg.checkpoint_dir is not None else None
        key = fingerprint(cfg, self.seed, positive, self.features_)
        if path is not None and path.exists():
            run, best = resume(path, key, net, steppers, schedulers, rng, device) or (run, best)
        while run["epoch"] < cfg.epochs and run["stale"] < cfg.patience:
            started = time.perf_counter()
            lr = steppers[0].param_groups[0]["lr"]
            samples = [torch.as_tensor(a, device=device) for a in epoch_samples(positive, cfg.negatives, cfg.loss == "bpr", rng, cfg.pairs_per_epoch)]
            loss = train_epoch(net, steppers, samples, cfg.loss, cfg.batch_size)
            # without validation users every epoch counts as the best: training runs all epochs
            ndcg = validation_ndcg(net, positive, truth, device, valid_cols) if truth else None
            run["epoch"] += 1
            if ndcg is None or ndcg > run["best_ndcg"] * (1 + cfg.min_improvement):
                run.update(best_epoch=run["epoch"], best_ndcg=-np.inf if ndcg is None else ndcg, stale=0)
                best = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                run["stale"] += 1
            if ndcg is not None:
                for scheduler in schedulers:
                    scheduler.step(ndcg)
            seconds = round(time.perf_counter() - started, 3)
            run["epochs"].append({"epoch": run["epoch"], "loss": loss, f"valid_ndcg@{VALID_K}": ndcg, "lr": lr, "seconds": seconds})
            log.info("ncf epoch %d: loss %.4f, valid ndcg@%d %s, lr %.2g", run["epoch"], loss, VALID_K, ndcg, lr)
            if path is not None:
                save_checkpoint(
                    path,
                    {"fingerprint": key, "run": run, "best": best, "net": net.state_dict(), "optimizers": [o.state_dict() for o in steppers],
                     "schedulers": [sc.state_dict() for sc in schedulers], "torch_rng": torch.get_rng_state(),
                     "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                     "numpy_rng": rng.bit_generator.state},
                )
        net.load_state_dict(best)
        best_ndcg = run["best_ndcg"] if np.isfinite(run["best_ndcg"]) else None
        return {"epochs": run["epochs"], "best_epoch": run["best_epoch"], f"best_valid_ndcg@{VALID_K}": best_ndcg}

    # ---- scoring --------------------------------------------------------------------
    def _score(self, rows: np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
        with torch.no_grad(), subnormals_flushed():
            items = None if cols is None else torch.as_tensor(cols, device=self.device_)
            logits = self.net_.score_all(torch.as_tensor(rows, device=self.device_), items)
        return torch.sigmoid(logits.double()).cpu().numpy()  # float64: sigmoids near 1 stay apart

    def _top(self, rows: np.ndarray, k: int, exclude_seen: bool) -> tuple[np.ndarray, np.ndarray]:
        """In a catalogue above ``score_max_items``, the network scores the most popular that
        many items only: every pair costs the fusion layers, and 50k items for 200k users
        would be ten billion of them."""
        limit = self.config.score_max_items
        if limit is None or len(self.item_ids_) <= limit:
            return super()._top(rows, k, exclude_seen)
        cols = np.sort(self.popular_[:limit])
        scores = self._score(rows, cols)
        if exclude_seen:
            mask_seen(scores, self.seen_[rows][:, cols])
        top, top_scores = top_k(scores, k)
        return cols[top], top_scores

    def training_metrics(self) -> dict[str, float]:
        """Epochs run, the best epoch, and its validation NDCG@10 (when there were validation users)."""
        out = {"epochs": float(len(self.history_["epochs"])), "best_epoch": float(self.history_["best_epoch"])}
        best = self.history_[f"best_valid_ndcg@{VALID_K}"]
        return out if best is None else {**out, f"valid_ndcg@{VALID_K}": float(best)}

    def _unit_item_embeddings(self) -> np.ndarray:
        """Item embeddings scaled to length 1, computed again only when the weights changed
        (reasons ask per user; a tensor's _version counts its in-place updates)."""
        weight = self.net_.item_embedding.weight
        of = getattr(self, "_unit_of", None)
        if of is None or of[0] is not weight or of[1] != weight._version:
            self._unit = unit_rows(weight.detach().cpu().numpy().astype(np.float64))
            self._unit_of = (weight, weight._version)
        return self._unit

    def _reasons(self, row: int, items: np.ndarray) -> list[str]:
        """'because you bought X and Y': the history items closest to each item by cosine of
        the item embeddings (closer than orthogonal); else its category's popularity."""
        history = self._history(row)
        vectors = self._unit_item_embeddings()
        similarity = vectors[items] @ vectors[history].T
        similarity[items[:, None] == history[None, :]] = -np.inf  # an item does not explain itself
        return self._nearest_history_reasons(row, items, history, similarity, positive_only=True)

    # ---- persistence ----------------------------------------------------------------
    def _save_extra(self, path: Path) -> None:
        """features.npz (the users' and items' inputs), model.pt (the network's state_dict),
        feature_stats.json and training_history.json."""
        np.savez(path / "features.npz", **self.features_.arrays())
        torch.save({k: v.cpu() for k, v in self.net_.state_dict().items()}, path / "model.pt")
        (path / "feature_stats.json").write_text(json.dumps(self.feature_stats_, indent=2))
        (path / "training_history.json").write_text(json.dumps(self.history_, indent=2))

    def _load_extra(self, path: Path) -> None:
        with np.load(path / "features.npz", allow_pickle=False) as arrays:
            self.features_ = Features.from_arrays({k: arrays[k] for k in arrays.files})
        self.feature_stats_ = json.loads((path / "feature_stats.json").read_text())
        self.history_ = json.loads((path / "training_history.json").read_text())
        self.device_ = resolve_device(self.config.device)
        self.net_ = NCFNet(self.config, self.features_).to(self.device_)
        self.net_.load_state_dict(torch.load(path / "model.pt", weights_only=True, map_location=self.device_))
        self.net_.eval()
