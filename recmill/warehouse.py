"""Publishing to the DuckDB warehouse, and reading from it.

A publish never opens the live file for writing: it builds a complete new database file
beside it and switches it in with an atomic rename. A reader that has the old file open
keeps its snapshot; the next reader opens the new file. So readers are never locked out,
never see half a publish, and a failed or killed publish leaves the old file as it was.
Files are written in the v1.5.0 storage format so the DuckDB 1.5 command-line client and
older clients can read them.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd

from recmill.errors import PublishFailed
from recmill.schema import HISTORY_TABLES, ITEM_LABELS, REFRESHED, SORT_KEYS, WAREHOUSE_TABLES
from recmill.sql import literal

STORAGE_VERSION = "v1.5.0"


def _ddl(table: str) -> str:
    cols = ", ".join(f'"{name}" {kind}' for name, kind in WAREHOUSE_TABLES[table])
    return f'CREATE TABLE "{table}" ({cols})'


@contextmanager
def _publish_lock(path: Path):
    """One publisher at a time per warehouse (readers never take this lock)."""
    lock = path.with_name(f".{path.name}.lock")
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(path: Path | str, frames: dict[str, pd.DataFrame], users: list[str] | None = None) -> dict[str, int]:
    """Replace the warehouse with one holding ``frames``; history tables are appended to.

    ``frames`` maps table names of schema.WAREHOUSE_TABLES to frames with those columns.
    Tables not given keep their previous content. With ``users``, the given tables (keyed
    by user_id) replace only those users' rows: the new file starts as a copy of the
    previous one, so everyone else's rows are kept as they were and a refresh of a few
    users costs a file copy, not a rebuild. Returns the row count of each table.
    """
    path = Path(path)
    unknown = set(frames) - set(WAREHOUSE_TABLES)
    if unknown:
        raise ValueError(f"not warehouse tables: {sorted(unknown)}")
    if users is not None:
        keyless = [t for t in frames if t not in HISTORY_TABLES and WAREHOUSE_TABLES[t][0][0] != "user_id"]
        if keyless:
            raise ValueError(f"tables without a user_id to replace by user: {keyless}")
        if not path.exists():
            raise PublishFailed(f"{path}: nothing published yet to replace users' rows in")
    path.parent.mkdir(parents=True, exist_ok=True)
    with _publish_lock(path):
        for stale in path.parent.glob(f".{path.name}.*.building*"):  # left by a publisher killed mid-way: the lock is ours
            stale.unlink(missing_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.building")
        try:
            if users is not None:
                shutil.copyfile(path, tmp)  # no publisher writes it while we hold the lock: the copy is whole
            con = duckdb.connect(str(tmp), config={"storage_compatibility_version": STORAGE_VERSION})
            try:
                if users is None:
                    _rebuild(con, path, frames)
                else:
                    _replace_users(con, frames, users)
                counts = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in WAREHOUSE_TABLES}
                con.execute("CHECKPOINT")
            finally:
                con.close()
            _fsync(tmp)
            os.replace(tmp, path)
            _fsync(path.parent)
        except (duckdb.IOException, OSError) as exc:
            raise PublishFailed(f"{path}: the new tables could not be written ({exc}); the previous ones are as they were") from exc
        finally:
            tmp.unlink(missing_ok=True)
            tmp.with_name(tmp.name + ".wal").unlink(missing_ok=True)
    return counts


def _select(con: duckdb.DuckDBPyConnection, table: str, source: str, has: set[str]) -> str:
    """A SELECT of table's columns from source (which has the columns ``has``), in the
    table's sort order: the item labels from the database's `items` where source lacks
    them, any other column it lacks NULL."""
    labelled = [c for c, _ in WAREHOUSE_TABLES[table] if c in ITEM_LABELS and c not in has]
    with_items = bool(labelled) and bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_catalog = current_database() AND table_name = 'items'"
    ).fetchone()[0])
    picked = ", ".join(
        f's."{c}"' if c in has else f'i."{ITEM_LABELS[c]}" AS "{c}"' if c in labelled and with_items else f'NULL AS "{c}"'
        for c, _ in WAREHOUSE_TABLES[table]
    )
    joined = f"{source} s" + (" LEFT JOIN items i ON i.item_id = s.item_id" if with_items else "")
    order = ", ".join(f's."{c}"' for c in SORT_KEYS.get(table, ()))
    return f"SELECT {picked} FROM {joined}" + (f" ORDER BY {order}" if order else "")


def _insert(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    """frame's rows into table, in the table's sort order, with the item labels of `items`."""
    missing = [c for c, _ in WAREHOUSE_TABLES[table] if c not in frame.columns and c not in ITEM_LABELS]
    if missing:
        raise ValueError(f"frame for {table} lacks columns {missing}")
    con.register("incoming", frame)
    con.execute(f'INSERT INTO "{table}" ' + _select(con, table, "incoming", set(frame.columns)))
    con.unregister("incoming")


def _rebuild(con: duckdb.DuckDBPyConnection, path: Path, frames: dict[str, pd.DataFrame]) -> None:
    """Every table in the empty database of con: the frames, and the previous file's rows of
    the history tables and of the tables not given; `items` first, for the item labels."""
    previous = set()
    if path.exists():
        con.execute(f"ATTACH {literal(path)} AS previous (READ_ONLY)")
        previous = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'previous'"
        ).fetchall()}
    for table in sorted(WAREHOUSE_TABLES, key=lambda t: t != "items"):
        con.execute(_ddl(table))
        if table in previous and (table in HISTORY_TABLES or table not in frames):
            old = {r[0] for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_catalog = 'previous' AND table_name = ?",
                [table],
            ).fetchall()}
            # a column added since that publish: NULL in the older rows (or the items' label)
            con.execute(f'INSERT INTO "{table}" ' + _select(con, table, f'previous."{table}"', old))
        if table in frames:
            _insert(con, table, frames[table])
    for table, keys in SORT_KEYS.items():
        con.execute(f'CREATE INDEX "{table}_{keys[0]}" ON "{table}" ("{keys[0]}")')
    if previous:
        con.execute("DETACH previous")


def _replace_users(con: duckdb.DuckDBPyConnection, frames: dict[str, pd.DataFrame], users: list[str]) -> None:
    """In con's copy of the previous file: these users' rows of each given table replaced by
    the frame's; history tables appended to. A table the copy lacks (published by an older
    recmill) calls for a full publish first."""
    con.register("replaced_users", pd.DataFrame({"user_id": pd.Series(users, dtype="string")}))
    present = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    for table, frame in frames.items():
        if table not in present:
            raise PublishFailed(f"the warehouse has no {table} table to replace users' rows in; a full publish (`recmill run`) makes it")
        if table not in HISTORY_TABLES:
            con.execute(f'DELETE FROM "{table}" WHERE user_id IN (SELECT user_id FROM replaced_users)')
        _insert(con, table, frame)
    con.unregister("replaced_users")


# a reader changes nothing: not the warehouse (read-only), no other database or file (no
# external access: no ATTACH, COPY TO, file reads or extensions), and it cannot lift either
READER_CONFIG = {
    "enable_external_access": "false", "autoinstall_known_extensions": "false", "autoload_known_extensions": "false",
    "lock_configuration": "true",
}


def connect(path: Path | str, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection: never blocks a publish, never sees half of one, writes nothing."""
    return duckdb.connect(str(path), read_only=True, config=READER_CONFIG | ({"threads": str(threads)} if threads else {}))


def query(path: Path | str, sql: str, params: list | None = None) -> pd.DataFrame:
    con = connect(path)
    try:
        return con.execute(sql, params or []).df()
    finally:
        con.close()


def row_counts(path: Path | str) -> dict[str, int]:
    """Rows of each warehouse table (what publish returns), of the file as it is."""
    con = connect(path)
    try:
        return {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in WAREHOUSE_TABLES}
    finally:
        con.close()


def has_run(path: Path | str, run_id: str) -> bool:
    """Whether the warehouse holds this pipeline run's publish: its `runs` row comes in the
    same switch as its lists."""
    return Path(path).exists() and bool(query(path, "SELECT count(*) AS n FROM runs WHERE run_id = ?", [run_id])["n"].item())


def last_retrain(path: Path | str) -> str | None:
    """The run id of the last retrain that published (a refresh is not one)."""
    runs = query(path, "SELECT run_id FROM runs WHERE status <> ? ORDER BY finished_at DESC LIMIT 1", [REFRESHED])
    return runs["run_id"].iloc[0] if len(runs) else None


def serving_version(path: Path | str) -> str | None:
    """The registry version whose lists `recommendations` holds; None before the first publish."""
    if not Path(path).exists():
        return None
    versions = query(path, "SELECT DISTINCT model_version FROM recommendations")["model_version"].dropna()
    return str(versions.iloc[0]) if len(versions) == 1 else None


class Reader:
    """A read-only connection kept between queries, reopened when a publish has switched in
    a new file: a lookup costs the query, not opening the database each time, and a query
    reads the tables of the last publish that had finished when it started. One thread: a
    lookup reads a few rows, and the cores are better left to the other readers and to a
    publish than spent scheduling one small query across them."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._con: duckdb.DuckDBPyConnection | None = None
        self._file: tuple[int, int] | None = None

    def _connection(self) -> duckdb.DuckDBPyConnection:
        stat = os.stat(self.path)
        file = (stat.st_dev, stat.st_ino)  # a publish renames a new file into place: a new inode
        if file != self._file:
            self.close()
            self._con, self._file = connect(self.path, threads=1), file
        return self._con

    def query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        return self._connection().execute(sql, params or []).df()

    def rows(self, sql: str, params: list | None = None) -> list[tuple]:
        return self._connection().execute(sql, params or []).fetchall()

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
        self._con, self._file = None, None

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
