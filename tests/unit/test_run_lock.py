"""One run at a time per data folder and warehouse; a killed run's lock goes with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from recmill.errors import RunInProgress
from recmill.runtime import one_run_at_a_time

REPO = Path(__file__).resolve().parents[2]


def test_a_second_run_stops_at_once_naming_the_first_and_a_killed_run_frees_the_lock(tmp_path):
    lock = tmp_path / "data" / ".run.lock"
    script = (
        "import pathlib, sys, time\n"
        "from recmill.runtime import one_run_at_a_time\n"
        "with one_run_at_a_time(pathlib.Path(sys.argv[1])):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", script, str(lock)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunInProgress, match=rf"another recmill run is using {tmp_path / 'data'} \(pid {holder.pid}, started .* UTC\)"):
            with one_run_at_a_time(tmp_path / "other.lock", lock):
                pytest.fail("ran beside the holder")
        with one_run_at_a_time(tmp_path / "other.lock"):  # what it took before it stopped, it let go
            pass
    finally:
        holder.kill()  # as kill -9 would: no clean-up runs
        holder.wait()
    with one_run_at_a_time(lock):
        assert lock.read_text().startswith("pid ")
