"""The generic source (events, and optionally items and users, as CSV or parquet files)
and the file-reading helpers the other loaders share.

Every helper raises DataLoadError naming the file, the column and the rows at fault:
file line numbers for CSV (the header is line 1), row indexes for parquet.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from recmill import schema as S
from recmill.data.tables import Origin, Tables, canonical_events, canonical_items, canonical_users
from recmill.errors import DataLoadError

EVENT_TEXT = (S.USER_ID, S.ITEM_ID, S.ORDER_ID, S.EVENT_TYPE)
ITEM_TEXT = (S.ITEM_ID, "name", "description", "category", "tags", "brand")


def load_files(path: Path) -> Tables:
    """events.csv|parquet (required), items.csv|parquet and users.csv|parquet (optional)."""
    events_file = find_table(path, "events")
    if events_file is None:
        raise missing_file(path, "events.csv or events.parquet (items and users are optional)")
    events, origin = read_events(events_file)
    tables = Tables(events, origins={"events": origin})

    items_file = find_table(path, "items")
    if items_file is not None:
        items, origin = read_table(items_file, (S.ITEM_ID,), text=ITEM_TEXT)
        if "price" in items:
            items["price"] = to_number(items["price"], items_file, "price", origin.first_line)
        tables.items, tables.origins["items"] = canonical_items(items), origin

    users_file = find_table(path, "users")
    if users_file is not None:
        users, origin = read_table(users_file, (S.USER_ID,), text=(S.USER_ID,))
        tables.users, tables.origins["users"] = canonical_users(users), origin
    return tables


def read_events(file: Path) -> tuple[pd.DataFrame, Origin]:
    """One events file as canonical events, and where its rows came from."""
    events, origin = read_table(file, S.EVENT_REQUIRED, text=EVENT_TEXT)
    events[S.TIMESTAMP] = to_timestamps(events[S.TIMESTAMP], file, S.TIMESTAMP, origin.first_line)
    if S.VALUE in events:
        events[S.VALUE] = to_number(events[S.VALUE], file, S.VALUE, origin.first_line)
    return canonical_events(events), origin


def load_increments(directory: Path) -> pd.DataFrame:
    """The events of every CSV or parquet file in directory (none when it does not exist),
    in file name order. A row without a user or item id, with an event type recmill does not
    know or a timestamp in the future stops it, naming the file, the column and the rows."""
    files = sorted(p for p in directory.glob("*") if p.suffix in (".csv", ".parquet") and p.is_file()) if directory.is_dir() else []
    now = pd.Timestamp.now("UTC").tz_localize(None)
    parts = []
    for file in files:
        events, origin = read_events(file)
        for column, bad, why in (
            (S.USER_ID, events[S.USER_ID].isna(), "has no user id"),
            (S.ITEM_ID, events[S.ITEM_ID].isna(), "has no item id"),
            (S.EVENT_TYPE, ~events[S.EVENT_TYPE].isin(S.EVENT_TYPES), f"is not one of {', '.join(S.EVENT_TYPES)}"),
            (S.TIMESTAMP, events[S.TIMESTAMP] > now, f"is in the future (after {now:%Y-%m-%d %H:%M:%S} UTC)"),
        ):
            if bad.any():
                at = np.flatnonzero(bad.to_numpy())
                lines = at + origin.first_line if origin.first_line is not None else at
                raise DataLoadError(file, f"{len(at):,} row(s) where {column} {why}", column, lines)
        parts.append(events)
    return pd.concat(parts, ignore_index=True) if parts else canonical_events(pd.DataFrame(columns=list(S.EVENT_REQUIRED)))


def find_table(directory: Path, stem: str) -> Path | None:
    """stem.csv or stem.parquet in directory; None when neither is there."""
    found = [directory / f"{stem}{ext}" for ext in (".csv", ".parquet") if (directory / f"{stem}{ext}").is_file()]
    if len(found) > 1:
        raise DataLoadError(directory, f"both {stem}.csv and {stem}.parquet are present; keep one")
    return found[0] if found else None


def missing_file(directory: Path, expected: str) -> DataLoadError:
    if not Path(directory).is_dir():
        return DataLoadError(directory, f"directory not found; expected it to hold {expected}")
    present = sorted(p.name for p in Path(directory).iterdir()) or ["nothing"]
    return DataLoadError(directory, f"expected {expected}; the directory has {', '.join(present)}")


def read_table(file: Path, required: Sequence[str], text: Sequence[str] = ()) -> tuple[pd.DataFrame, Origin]:
    """A CSV (with a header) or parquet file, and where its rows came from."""
    if file.suffix == ".parquet":
        try:
            df = pq.read_table(file).to_pandas()
        except (OSError, pa.ArrowException) as exc:
            raise DataLoadError(file, f"cannot be read as parquet: {exc}") from None
        check_columns(file, df.columns, required, header_line=None)
        return df, Origin(str(file), None)
    return read_csv(file, required, text=text), Origin(str(file), 2)


def read_csv(
    file: Path,
    required: Sequence[str] = (),
    *,
    names: Sequence[str] | None = None,
    skip_rows: int = 0,
    sep: str = ",",
    encoding: str = "utf8",
    quoted: bool = True,
    text: Sequence[str] = (),
    only_required: bool = False,
) -> pd.DataFrame:
    """Read a CSV with pyarrow (multi-threaded, fine for files of tens of millions of lines).

    Without ``names`` the first line is the header. ``text`` columns stay strings ('007'
    stays '007'); the others get inferred types. Empty cells are missing values.
    """
    if file.is_file() and file.stat().st_size == 0:
        raise DataLoadError(file, "the file is empty" + ("" if names else ": it needs a header line naming its columns"))
    columns = None  # known once the header is read
    try:
        columns = list(names) if names is not None else header_of(file, sep, encoding)
        check_columns(file, columns, required, header_line=1 if names is None or skip_rows else None)
        table = pacsv.read_csv(
            file,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=skip_rows, encoding=encoding),
            parse_options=pacsv.ParseOptions(delimiter=sep, quote_char='"' if quoted else False),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in text if c in columns},
                include_columns=list(required) if only_required else None,
                strings_can_be_null=True,
            ),
        )
    except (OSError, UnicodeDecodeError, pa.ArrowException) as exc:
        line, fault = csv_fault(file, sep, encoding, quoted, None if columns is None else len(columns))
        raise DataLoadError(file, f"cannot be read as CSV: {fault or exc}", rows=[line] if line else None) from None
    return table.to_pandas()


def csv_fault(file: Path, sep: str, encoding: str, quoted: bool, fields: int | None) -> tuple[int | None, str | None]:
    """(line, what is wrong there) of the first line a fast reader failed on: bytes that are
    not text in the encoding, or a row with another number of fields than the header's."""
    with open(file, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8-sig" if encoding == "utf8" else encoding)
            except UnicodeDecodeError as exc:
                return number, f"not {encoding.upper().replace('UTF8', 'UTF-8')} text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
    if fields is None:
        return None, None
    with open(file, encoding="utf-8-sig" if encoding == "utf8" else encoding, newline="") as f:
        reader = csv.reader(f, delimiter=sep, quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE)
        for row in reader:
            if row and len(row) != fields:
                return reader.line_num, f"{len(row)} fields where {fields} are expected"
    return None, None


def header_of(file: Path, sep: str = ",", encoding: str = "utf8") -> list[str]:
    # utf-8-sig drops a byte-order mark that would otherwise stick to the first name
    with open(file, encoding="utf-8-sig" if encoding == "utf8" else encoding, newline="") as f:
        return next(csv.reader(f, delimiter=sep), [])


def check_columns(file: Path, found: Sequence[str], required: Sequence[str], header_line: int | None) -> None:
    for column in required:
        if column not in found:
            raise DataLoadError(
                file,
                f"missing required column '{column}'; found columns: {', '.join(map(str, found)) or 'none'}",
                column=column,
                rows=[header_line] if header_line else None,
            )


def file_rows(bad: pd.Series, first_line: int | None) -> list[int]:
    """Positions of the True entries as file lines (first_line given) or row indexes."""
    return (np.flatnonzero(bad.to_numpy(dtype=bool)) + (first_line or 0)).tolist()


def to_number(values: pd.Series, file: Path, column: str, first_line: int | None) -> pd.Series:
    """Floats; missing cells stay NaN, anything else that is not a number is an error."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype("float64")
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    bad = numbers.isna() & values.notna()
    if bad.any():
        raise DataLoadError(
            file, f"values must be numbers; found {_examples(values[bad])}", column=column, rows=file_rows(bad, first_line)
        )
    return numbers


def to_timestamps(values: pd.Series, file: Path, column: str, first_line: int | None) -> pd.Series:
    """Epoch seconds or ISO 8601 text (an offset is converted to UTC) -> naive UTC datetimes."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").dt.tz_localize(None)
    if pd.api.types.is_datetime64_dtype(values):
        return values
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        parsed = pd.to_datetime(values, unit="s", errors="coerce")
    else:
        text = values.astype("string")
        seconds = pd.to_numeric(text, errors="coerce").astype("float64")
        # format="ISO8601" would carry one row's UTC offset over to later rows that have none;
        # "mixed" parses each row on its own, and the pattern keeps it to ISO 8601 dates.
        iso_like = seconds.isna() & text.str.match(r"\d{4}-\d\d-\d\d", na=False)
        iso = pd.to_datetime(text.where(iso_like), format="mixed", utc=True, errors="coerce")
        parsed = iso.dt.tz_localize(None).fillna(pd.to_datetime(seconds, unit="s", errors="coerce"))
    bad = parsed.isna() & values.notna()
    if bad.any():
        raise DataLoadError(
            file,
            f"timestamps must be epoch seconds or ISO 8601 (e.g. 2026-01-31T12:00:00Z); found {_examples(values[bad])}",
            column=column,
            rows=file_rows(bad, first_line),
        )
    return parsed


def _examples(values: pd.Series) -> str:
    return ", ".join(repr(str(v)) for v in values.head(3))
