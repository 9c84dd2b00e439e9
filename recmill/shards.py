"""Work that splits by user, done by worker processes, one shard of users at a time.

A user's shard is a stable hash of their id (the same in every process and run). Each
worker loads what it needs from disk itself (a saved model), runs with one thread for
every library (the workers share the cores), and writes its part as a Parquet file under
a temporary name renamed into place, so that a part is whole or absent; the caller checks
that every part is there with the rows its worker counted, then reads them back in order.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

from recmill import schema as S
from recmill.errors import RecmillError
from recmill.io import read_frame, write_frame
from recmill.runtime import model_threads, threads_per_worker

SHARDS_PER_WORKER = 4  # smaller parts: a worker that finishes early takes the next


def shard_of(user_ids, shards: int) -> np.ndarray:
    """Each user's shard, 0 .. shards - 1: a stable hash of the id's text."""
    ids = pd.Series(np.asarray(user_ids, dtype=object).astype(str))
    return (pd.util.hash_pandas_object(ids, index=False).to_numpy() % np.uint64(shards)).astype(np.int64)


_LOADED: dict[str, object] = {}  # a worker's model, loaded for its first shard and kept for the next


def _shard_lists(model_dir: str, users: list[str], k: int, exclude_seen: bool, out: str) -> int:
    import torch

    from recmill.models import load_saved

    torch.set_num_threads(model_threads())
    if model_dir not in _LOADED:
        _LOADED.clear()
        _LOADED[model_dir] = load_saved(model_dir)
    recs = _LOADED[model_dir].recommend(users, k=k, exclude_seen=exclude_seen, reasons=True)
    write_frame(Path(out), recs)
    return len(recs)


def recommend_in_shards(model_dir: Path, users: list[str], k: int, exclude_seen: bool, workers: int) -> pd.DataFrame:
    """The saved model's recommend(users, k, exclude_seen, reasons=True), made by ``workers``
    processes a shard of users at a time: the same rows, in the same order."""
    shards = workers * SHARDS_PER_WORKER
    ids = np.asarray(users, dtype=object)
    shard = shard_of(ids, shards)
    with tempfile.TemporaryDirectory(prefix="recmill-shards-") as work, threads_per_worker(workers), ProcessPoolExecutor(
        max_workers=workers, mp_context=get_context("spawn")
    ) as pool:
        parts = [Path(work) / f"part-{s:04d}.parquet" for s in range(shards)]
        counted = [
            pool.submit(_shard_lists, str(model_dir), ids[shard == s].tolist(), k, exclude_seen, str(part))
            for s, part in enumerate(parts)
        ]
        counts = [future.result() for future in counted]
        frames = []
        for part, rows in zip(parts, counts):
            frame = read_frame(part) if part.exists() else None
            if frame is None or len(frame) != rows:
                raise RecmillError(f"shard {part.name}: {rows} rows made, {'none' if frame is None else len(frame)} written")
            frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    order = pd.Index(ids).get_indexer(out[S.USER_ID])
    return out.iloc[np.lexsort((out["rank"].to_numpy(), order))].reset_index(drop=True)
