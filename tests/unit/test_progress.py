"""recmill.progress: what a display is shown of a loop."""

from __future__ import annotations

import pytest

from recmill import progress


class Recorder:
    def __init__(self, what: str, total: int):
        self.what, self.total, self.shown, self.closed = what, total, [], False
        made.append(self)

    def update(self, done: int) -> None:
        self.shown.append(done)

    def close(self) -> None:
        self.closed = True


made: list[Recorder] = []


@pytest.fixture(autouse=True)
def recorder(monkeypatch):
    monkeypatch.setattr(progress, "_factories", [Recorder])
    made.clear()


def test_each_step_is_shown_and_an_early_end_shows_complete():
    with progress.steps("ncf: up to 5 epochs", 5) as advance:
        advance()
        advance(2)
    (display,) = made
    assert (display.what, display.total, display.shown, display.closed) == ("ncf: up to 5 epochs", 5, [1, 3, 5], True)


def test_a_failed_loop_stays_where_it_stopped_and_one_step_shows_nothing():
    with pytest.raises(ValueError), progress.steps("scoring", 4) as advance:
        advance()
        raise ValueError("boom")
    assert made[0].shown == [1] and made[0].closed
    with progress.steps("one batch", 1) as advance:
        advance()
    assert len(made) == 1


def test_a_display_is_added_once_and_none_means_not_here(monkeypatch):
    monkeypatch.setattr(progress, "_factories", [])
    progress.use(Recorder)
    progress.use(Recorder)
    progress.use(lambda what, total: None)
    with progress.steps("x", 3):
        pass
    assert len(made) == 1 and made[0].shown == [3]
