"""Process-wide settings for running offline and quietly; called by each entry point."""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import signal
import time
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

GIB = 2**30

OFFLINE_DEFAULTS = {
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "GX_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "DVC_NO_ANALYTICS": "1",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "recmill",  # the stages' own log lines show in Prefect's
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",  # ... and outside a flow stay local
    "OPENBLAS_NUM_THREADS": "1",  # implicit runs its own threads; BLAS threads on top only contend
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    # jemalloc hands freed Arrow memory back to the system within a second; mimalloc, the
    # default, kept 2 GiB of a 40M-event read's buffers resident (and built the data slower)
    "ARROW_DEFAULT_MEMORY_POOL": "jemalloc",
}


def offline_defaults() -> None:
    for key, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)
    import pyarrow as pa

    # the variable chooses the pool of the processes started from here; this one may have
    # made its default pool while importing
    pa.set_memory_pool(getattr(pa, f"{os.environ['ARROW_DEFAULT_MEMORY_POOL']}_memory_pool")())


THREADS_VARIABLE = "RECMILL_THREADS"


def cores() -> int:
    """The cores this process may run on."""
    return max(1, len(os.sched_getaffinity(0)))


def model_threads() -> int:
    """Threads a model's own parallel work (LightGBM's trees, implicit's ALS) may use in this
    process: every core, or the share the flow's pool of workers gives each (RECMILL_THREADS)."""
    value = os.environ.get(THREADS_VARIABLE)
    return int(value) if value else cores()


# what sizes a process's thread pools: torch's and FAISS's OpenMP, MKL, and recmill's own
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", THREADS_VARIABLE)


def worker_threads(workers: int) -> int:
    """Threads of each of this many worker processes sharing the cores."""
    return max(1, cores() // workers)


def use_threads(threads: int) -> None:
    """This process's thread pools take this many threads: a pool worker's initializer,
    run before the worker imports torch or FAISS."""
    os.environ.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))


@contextmanager
def threads_per_worker(workers: int):
    """Inside, processes started from this one (a pool's workers) each take their share of
    the cores, in every thread pool: two workers whose torch spun on every core each took
    twice the CPU time. The variables are as they were afterwards."""
    before = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    use_threads(worker_threads(workers))
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def one_run_at_a_time(*locks: Path):
    """Hold these lock files for the whole run: a second run on the same data folder or
    warehouse stops at once (RunInProgress, naming the run that holds it) instead of
    mixing its files and tables with the first. A lock goes with its process, even a killed one."""
    from recmill.errors import RunInProgress

    with ExitStack() as held:
        for lock in locks:
            lock.parent.mkdir(parents=True, exist_ok=True)
            handle = held.enter_context(open(lock, "a+"))
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "a process"
                raise RunInProgress(
                    f"another recmill run is using {lock.parent.resolve()} ({holder}): wait for it to end, "
                    "or give this run its own paths.data and publish.warehouse"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}, started {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC")
            handle.flush()
        yield


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_stopped_by: list[str] = []  # the signal that stopped this process, once one has


def stop_on_signals() -> None:
    """SIGTERM (`kill`, a scheduler stopping the job) and SIGINT (Ctrl-C) stop the command:
    exit handlers run, so the temporary Prefect server it started stops with it instead of
    being left running on its own. The signal is also remembered, so that a library which
    swallows the KeyboardInterrupt (or a task retry that
    follows it) only delays the stop to the next stage (stop_if_signalled)."""
    def interrupt(signum, frame):
        _stopped_by.append(signal.Signals(signum).name)
        raise KeyboardInterrupt(f"stopped by signal {_stopped_by[0]}")

    for stop in STOP_SIGNALS:
        signal.signal(stop, interrupt)


def stop_signalled() -> bool:
    return bool(_stopped_by)


def stop_if_signalled() -> None:
    """Raise the KeyboardInterrupt of a stop signal this process received."""
    if _stopped_by:
        raise KeyboardInterrupt(f"stopped by signal {_stopped_by[0]}")


DEBUG_ENV = "RECMILL_DEBUG"  # set (by `recmill --debug`): input errors show their tracebacks


@functools.cache
def error_names() -> frozenset[str]:
    """The class names of RecmillError and every subclass of it (all defined in recmill.errors)."""
    from recmill.errors import RecmillError

    names, pending = set(), [RecmillError]
    while pending:
        cls = pending.pop()
        names.add(cls.__name__)
        pending += cls.__subclasses__()
    return frozenset(names)


class InputErrorsOffConsole(logging.Filter):
    """Keeps Prefect's records of a RecmillError off the console: its traceback, then each
    failed task and flow repeating the message. The command prints the error once itself;
    the Prefect UI still gets every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        from recmill.errors import RecmillError

        if record.exc_info and isinstance(record.exc_info[1], RecmillError):
            return False
        text = record.getMessage()
        return not any(f"{name}:" in text or f"{name}(" in text for name in error_names())


def quiet_input_errors() -> None:
    """Put InputErrorsOffConsole on Prefect's console handler in this process, unless DEBUG_ENV is set."""
    if os.environ.get(DEBUG_ENV):
        return
    for handler in logging.getLogger().handlers:
        if type(handler).__name__ == "PrefectConsoleHandler" and not any(isinstance(f, InputErrorsOffConsole) for f in handler.filters):
            handler.addFilter(InputErrorsOffConsole())


def reset_peak_memory() -> None:
    """Start a new peak of this process's resident memory (Linux; elsewhere the peak runs on)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_memory() -> int:
    """This process's peak resident memory in bytes since start or the last reset."""
    import resource

    try:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0]) * 1024
    except (OSError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@contextmanager
def measured(into: dict):
    """Puts the block's wall seconds, CPU seconds (every thread of the process) and peak
    resident memory in GiB into ``into``, from the process's own accounting, even when it raises."""
    reset_peak_memory()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield into
    finally:
        into.update(
            wall_s=round(time.perf_counter() - wall, 2),
            cpu_s=round(time.process_time() - cpu, 2),
            peak_rss_gib=round(peak_memory() / GIB, 3),
        )
        release_memory()


def release_memory() -> None:
    """Hand freed memory back to the system: the allocators (glibc's, Arrow's) keep what a
    stage freed, and the next stage in the same process would start from that peak. What
    survives the collection (modules, the engine's state: half a million objects once the
    libraries are loaded) is frozen, so later collections, this one's next call included,
    scan only what came after instead of a third of a second of the same objects."""
    import ctypes
    import gc

    import pyarrow

    gc.collect()
    gc.freeze()
    pyarrow.default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def measured_run(run, *args) -> tuple[object, dict]:
    """run(*args) and its figures (see measured), taken in the process where it runs."""
    figures: dict = {}
    with measured(figures):
        result = run(*args)
    return result, figures
