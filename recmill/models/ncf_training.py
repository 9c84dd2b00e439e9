"""Training the hybrid neural collaborative filter (recmill.models.ncf): sampled epochs,
the loss, the optimisers, validation NDCG, checkpoints, and the settings that make a CPU
run repeat exactly."""

from __future__ import annotations

import hashlib
import logging
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from recmill.config import NCFConfig
from recmill.errors import RecmillError
from recmill.evaluation.metrics import mean_over_users
from recmill.models.base import SCORE_CELLS, mask_seen, top_k
from recmill.models.ncf_features import Features
from recmill.models.ncf_network import NCFNet

log = logging.getLogger("recmill")
VALID_K = 10
CHECKPOINT_FORMAT = b"optimizer-list"  # in the fingerprint: a checkpoint of another layout is another training
# one thread: sums in a fixed order, so a CPU run repeats exactly (deterministic algorithms
# add nothing then, at a fifth more time), and two threads stall on two shared cores
THREADS = 1
CHECKPOINT = "checkpoint.pt"


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
