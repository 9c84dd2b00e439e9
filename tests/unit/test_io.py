"""Parquet files written and read a slice at a time hold what the whole frame holds."""

from __future__ import annotations

import pandas as pd
import pytest

from recmill.data.sources.synthetic import generate
from recmill.io import frame_batches, read_frame, write_frame, write_frame_slices


def test_a_frame_written_and_read_in_slices_is_the_frame(tmp_path):
    events = generate("tiny", seed=3).events
    write_frame(tmp_path / "whole.parquet", events)
    write_frame_slices(tmp_path / "sliced.parquet", (events.iloc[s : s + 7] for s in range(0, len(events), 7)))
    whole = read_frame(tmp_path / "whole.parquet")
    pd.testing.assert_frame_equal(read_frame(tmp_path / "sliced.parquet"), whole)
    batches = list(frame_batches(tmp_path / "sliced.parquet", 5))
    assert [len(b) for b in batches[:-1]] == [5] * (len(batches) - 1)
    pd.testing.assert_frame_equal(pd.concat(batches, ignore_index=True), whole)


def test_writing_no_slice_is_an_error_and_leaves_no_file(tmp_path):
    with pytest.raises(ValueError, match="no frame to write"):
        write_frame_slices(tmp_path / "empty.parquet", iter([]))
    assert not (tmp_path / "empty.parquet").exists()
