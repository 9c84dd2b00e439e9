"""How many threads a model's own parallel work takes."""

from __future__ import annotations

import os

from recmill.runtime import THREADS_VARIABLE, model_threads, threads_per_worker


def test_a_pools_workers_share_the_cores(monkeypatch):
    monkeypatch.delenv(THREADS_VARIABLE, raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert model_threads() == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    with threads_per_worker(2):
        assert os.environ[THREADS_VARIABLE] == os.environ["OMP_NUM_THREADS"] == os.environ["MKL_NUM_THREADS"] == "2"
        assert model_threads() == 2
    with threads_per_worker(8):
        assert model_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
    assert THREADS_VARIABLE not in os.environ and model_threads() == 4
    assert os.environ["OMP_NUM_THREADS"] == "3"  # as it was
