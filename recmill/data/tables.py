"""The canonical tables as one value, and the normaliser every source ends with."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from recmill import schema as S

ID_STORAGE = "pyarrow"  # Arrow buffers, not one Python object per value: compact at 40M rows
ID_DTYPE = pd.StringDtype(ID_STORAGE)  # pandas' nullable string dtype; IDs are strings everywhere


@dataclass(frozen=True)
class Origin:
    """Where a canonical table came from, so errors can point at the file.

    ``first_line`` is the file line holding canonical row 0 (2 for a CSV with a header,
    1 for a headerless file); None when rows do not map one-to-one onto file lines.
    """

    path: str
    first_line: int | None = None

    def row_label(self, index: int) -> str:
        return f"line {index + self.first_line}" if self.first_line is not None else f"row {index}"


@dataclass
class Tables:
    events: pd.DataFrame
    items: pd.DataFrame = field(default_factory=lambda: pd.DataFrame({S.ITEM_ID: pd.Series(dtype=ID_DTYPE)}))
    users: pd.DataFrame = field(default_factory=lambda: pd.DataFrame({S.USER_ID: pd.Series(dtype=ID_DTYPE)}))
    # table name ("events", "items", "users") -> where it was read from; absent for generated data
    origins: dict[str, Origin] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """A short content hash of the three tables (same data, same fingerprint)."""
        h = hashlib.sha256()
        for df in (self.events, self.items, self.users):
            h.update(",".join(map(str, df.columns)).encode())
            for name in df.columns:
                for part in content_bytes(df[name]):
                    h.update(part)
        return h.hexdigest()[:16]


def content_bytes(column: pd.Series) -> list:
    """A column's values as bytes. Arrow strings give their own buffers (which values are
    missing, where each ends, the characters): pandas' hashing of them took 40 s at 40M rows."""
    if not (isinstance(column.dtype, pd.StringDtype) and column.dtype.storage == ID_STORAGE):
        return [pd.util.hash_pandas_object(column, index=False).to_numpy().tobytes()]
    values = pa.array(column)
    values = (values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values).cast(pa.large_string())
    if not len(values):
        return []
    present = np.packbits(values.is_valid().to_numpy(zero_copy_only=False))
    values = values.fill_null("")
    ends = np.frombuffer(values.buffers()[1], dtype=np.int64)[values.offset : values.offset + len(values) + 1]
    return [present.tobytes(), (ends - ends[0]).tobytes(), memoryview(values.buffers()[2] or b"")[ends[0] : ends[-1]]]


def _as_id(series: pd.Series) -> pd.Series:
    """IDs as strings; integral floats (1.0 from a CSV with gaps) lose their '.0'."""
    if pd.api.types.is_float_dtype(series) and series.dropna().mod(1).eq(0).all():
        series = series.astype("Int64")
    return series.astype(ID_DTYPE)


def canonical_events(df: pd.DataFrame) -> pd.DataFrame:
    """Columns in canonical order and dtype. Timestamps must already be datetimes."""
    out = pd.DataFrame(
        {
            S.USER_ID: _as_id(df[S.USER_ID]),
            S.ITEM_ID: _as_id(df[S.ITEM_ID]),
            S.TIMESTAMP: pd.to_datetime(df[S.TIMESTAMP]).astype("datetime64[ns]"),
            S.EVENT_TYPE: (df[S.EVENT_TYPE] if S.EVENT_TYPE in df else pd.Series(S.DEFAULT_EVENT_TYPE, index=df.index)).astype(ID_DTYPE),
            S.VALUE: (df[S.VALUE] if S.VALUE in df else pd.Series(1.0, index=df.index)).astype("float64"),
            S.ORDER_ID: _as_id(df[S.ORDER_ID]) if S.ORDER_ID in df else pd.Series(pd.NA, index=df.index, dtype=ID_DTYPE),
        }
    )
    return out.reset_index(drop=True)


def canonical_items(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out[S.ITEM_ID] = _as_id(out[S.ITEM_ID])
    if "price" in out:
        out["price"] = pd.to_numeric(out["price"], errors="raise").astype("float64")
    for col in ("name", "description", "category", "tags", "brand"):
        if col in out:
            out[col] = out[col].astype(ID_DTYPE)
    first = [c for c in S.ITEM_COLUMNS if c in out]
    return out[first + [c for c in out.columns if c not in first]].reset_index(drop=True)


def canonical_users(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out[S.USER_ID] = _as_id(out[S.USER_ID])
    return out[[S.USER_ID] + [c for c in out.columns if c != S.USER_ID]].reset_index(drop=True)


def epoch_seconds(ts: pd.Series) -> np.ndarray:
    return ts.astype("datetime64[ns]").astype("int64").to_numpy() / 1e9
