"""The out-of-core split of the canonical events file agrees with the split of a frame."""

from __future__ import annotations

import pandas as pd
import pytest

from recmill.config import SplitConfig
from recmill.data.sources.synthetic import generate
from recmill.data.split import split_file, temporal_split
from recmill.io import read_frame, write_frame
from recmill.sql import connect


@pytest.mark.parametrize(
    "cfg",
    [
        SplitConfig(),
        SplitConfig(test_n=2, valid_n=1, test_fraction=None),
        SplitConfig(valid_fraction=None, min_user_events=2),
        SplitConfig(method="global_time", test_start="2025-06-01", valid_start="2025-05-01"),
    ],
    ids=["fractions", "last_n", "no_valid", "global_time"],
)
def test_file_split_equals_frame_split(tmp_path, cfg):
    events = generate("tiny", seed=3).events
    if cfg.method == "global_time":  # cut the shop's own time range in three
        lo, hi = events["timestamp"].min(), events["timestamp"].max()
        cfg = cfg.model_copy(update={"valid_start": lo + (hi - lo) * 0.7, "test_start": lo + (hi - lo) * 0.85})
    write_frame(tmp_path / "events.parquet", events)
    con = connect(threads=2, spill=tmp_path / "spill")
    counts = split_file(tmp_path / "events.parquet", tmp_path / "split", cfg, con)
    want = temporal_split(events, cfg)
    assert counts == {name: len(frame) for name, frame in want.items()}
    assert sum(counts.values()) == len(events)
    assert counts["train"] > 0 and counts["test"] > 0
    for name, frame in want.items():
        got = read_frame(tmp_path / "split" / f"{name}.parquet")
        pd.testing.assert_frame_equal(got, frame)
