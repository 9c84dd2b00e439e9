"""Reading and writing the pipeline's files. Stages get paths from here, never build them."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recmill import schema as S
from recmill.config import Settings
from recmill.data.tables import ID_DTYPE, ID_STORAGE, Tables

TABLE_NAMES = ("events", "items", "users")


class Layout:
    """Where each stage's outputs live, from the settings' paths section."""

    def __init__(self, settings: Settings):
        self.data = settings.paths.data
        self.reports = settings.paths.reports
        self.spill = settings.duckdb.spill or self.data / "spill"  # where DuckDB spills

    canonical = property(lambda self: self.data / "canonical")
    run_info = property(lambda self: self.data / "canonical" / "run.json")
    splits = property(lambda self: self.data / "split")
    models = property(lambda self: self.data / "models")
    shared_fits = property(lambda self: self.data / "shared_fits")  # fits two models need (recmill.fits.shared_fit)
    validation = property(lambda self: self.reports / "validation")
    metrics = property(lambda self: self.reports / "metrics")
    selection = property(lambda self: self.reports / "selection.json")
    drift = property(lambda self: self.reports / "drift")
    evaluation = property(lambda self: self.reports / "evaluation")

    refit = property(lambda self: self.data / "refit")
    # the events refreshes folded in since the canonical tables were written (pipelines.refresh)
    refreshed_events = property(lambda self: self.data / "refresh" / "events.parquet")
    publish_report = property(lambda self: self.reports / "publish.json")
    stage_report = property(lambda self: self.reports / "stages.json")  # each stage's time and memory

    def model_dir(self, model: str, fit: str) -> Path:
        """fit: 'valid' (trained on train), 'test' (train + valid) or 'full' (all data)."""
        return self.refit / model if fit == "full" else self.models / model / fit

    def metrics_file(self, model: str) -> Path:
        return self.metrics / f"{model}.json"

    def curve_file(self, model: str) -> Path:
        """Each k's test figures, one record per k: what `dvc plots` draws."""
        return self.metrics / f"{model}.curve.json"

    def per_user_file(self, model: str) -> Path:
        """user -> the selection metric of the test fit."""
        return self.metrics / f"{model}.per_user.json"

    def tracking_file(self, model: str) -> Path:
        return self.models / model / "mlflow.json"


def write_json(path: Path, obj) -> None:
    """Write JSON atomically, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=str)
        f.write("\n")
    os.chmod(tmp, 0o644)  # mkstemp makes the file private; reports are for everyone
    os.replace(tmp, path)


def read_json(path: Path):
    return json.loads(Path(path).read_text())


def run_info(settings: Settings) -> dict:
    """The pipeline run's identity, written by ingest: run_id, data fingerprint, settings."""
    return read_json(Layout(settings).run_info)


def write_frame(path: Path, df: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def write_frame_slices(path: Path, frames: Iterable[pd.DataFrame]) -> None:
    """Frames of the same columns and types into one parquet file, one at a time: a table
    too large to copy whole is written a slice of rows at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    writer = None
    try:
        for frame in frames:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            writer = writer or pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise ValueError(f"{path}: no frame to write (an empty one gives the file its columns)")
    os.replace(tmp, path)


def read_frame(path: Path, columns: list[str] | None = None, coded_ids: bool = False, filters=None) -> pd.DataFrame:
    """A parquet file (only ``columns``, and the rows ``filters`` keeps, when given: pyarrow's
    filters, e.g. [("event_type", "==", "rating")]). Text comes back as Arrow-backed
    strings, never Python objects: 40M IDs take hundreds of MB instead of many GB. ID
    columns are text, unless coded_ids: a file of integer ID codes keeps them."""
    return _frame(pq.read_table(path, columns=columns, filters=filters), coded_ids)


def read_user_rows(path: Path, users) -> pd.DataFrame:
    """The rows of a parquet file with a user_id among ``users``, filtered as DuckDB reads
    it (a quarter of the time of Arrow's filter on 40M rows)."""
    from recmill.sql import connect, literal

    con = connect()
    try:
        con.register("wanted", pd.DataFrame({S.USER_ID: pd.Series(list(users), dtype="string")}))
        return _frame(con.sql(f"SELECT * FROM read_parquet({literal(path)}) WHERE user_id IN (SELECT user_id FROM wanted)").to_arrow_table())
    finally:
        con.close()


def frame_batches(path: Path, rows: int, coded_ids: bool = False) -> Iterator[pd.DataFrame]:
    """A parquet file as frames of at most ``rows`` rows, typed as read_frame types them:
    a file too large for memory is read a slice at a time."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
        yield _frame(pa.Table.from_batches([batch]), coded_ids)


def _frame(table: pa.Table, coded_ids: bool = False) -> pd.DataFrame:
    df = table.to_pandas(types_mapper={pa.string(): pd.StringDtype(ID_STORAGE), pa.large_string(): pd.StringDtype(ID_STORAGE)}.get)
    ids = (S.ORDER_ID, S.EVENT_TYPE) if coded_ids else (S.USER_ID, S.ITEM_ID, S.ORDER_ID, S.EVENT_TYPE)
    for col in df.columns:
        if col == S.TIMESTAMP:  # files written by DuckDB hold microseconds
            df[col] = df[col].astype("datetime64[ns]")
        elif col in ids and df[col].dtype != ID_DTYPE:
            df[col] = df[col].astype(ID_DTYPE)  # a column of nulls only has no string type in the file
    return df


def write_tables(directory: Path, tables: Tables) -> None:
    for name in TABLE_NAMES:
        write_frame(directory / f"{name}.parquet", getattr(tables, name))
    write_json(directory / "origins.json", {k: vars(v) for k, v in tables.origins.items()})


def read_tables(directory: Path) -> Tables:
    from recmill.data.tables import Origin

    origins = read_json(directory / "origins.json") if (directory / "origins.json").exists() else {}
    return Tables(
        *(read_frame(directory / f"{name}.parquet") for name in TABLE_NAMES),
        origins={k: Origin(**v) for k, v in origins.items()},
    )
