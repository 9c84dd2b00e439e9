"""Progress of long loops (scoring users in batches, training epochs): a bar in the terminal,
and whatever else an entry point adds with ``use`` (the flow adds Prefect progress
artifacts, so the library itself imports no Prefect)."""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol


class Display(Protocol):
    def update(self, done: int) -> None: ...

    def close(self) -> None: ...


DisplayFactory = Callable[[str, int], "Display | None"]  # (what, total steps) -> a display, or None: not here
_factories: list[DisplayFactory] = []


def use(factory: DisplayFactory) -> None:
    """Show every loop's progress through factory too."""
    if factory not in _factories:
        _factories.append(factory)


class TerminalBar:
    """A rich progress bar on stderr, gone when the loop ends."""

    def __init__(self, what: str, total: int):
        from rich.console import Console
        from rich.progress import Progress

        self.progress = Progress(console=Console(stderr=True), transient=True)
        self.progress.start()
        self.task = self.progress.add_task(what, total=total)

    def update(self, done: int) -> None:
        self.progress.update(self.task, completed=done)

    def close(self) -> None:
        self.progress.stop()


def terminal_bar(what: str, total: int) -> Display | None:
    """A bar where a person watches: stderr is a terminal, and this is not a pool worker
    (bars of several processes on one terminal would overwrite each other)."""
    return TerminalBar(what, total) if sys.stderr.isatty() and multiprocessing.parent_process() is None else None


@contextmanager
def steps(what: str, total: int) -> Iterator[Callable[[int], None]]:
    """advance(n=1) for a loop of total steps, shown by every display that shows here; a
    loop that ends normally shows as complete (one that stops early, as training does, too).
    A loop of one step shows nothing."""
    displays = [d for factory in (terminal_bar, *_factories) if (d := factory(what, total)) is not None] if total > 1 else []
    done = 0

    def advance(n: int = 1) -> None:
        nonlocal done
        done += n
        for display in displays:
            display.update(done)

    try:
        yield advance
        if done < total:
            advance(total - done)
    finally:
        for display in displays:
            display.close()
