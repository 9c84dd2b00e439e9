"""Checks on the canonical tables, run before anything trains.

Every check that looks at rows runs in DuckDB SQL over the tables (the parquet files of
the stage, or frames registered on a connection), so the events never have to fit in
memory: only counts, the first failing rows and a few example rows come back. Great-
expectations then judges the results: per table, a one-row frame holding each check's
failing rows (or the observed value of a table-level check) is validated by a suite saying
"no failing rows" and "at least this many events, users, items". Every check carries a
plain-words message, so a failure reads "event_type must be one of view, cart, purchase,
rating", not a GE type name, and points at file lines ("line 4").
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recmill import schema as S
from recmill.data.tables import ID_DTYPE, Origin, Tables
from recmill.errors import DataLoadError, ValidationFailed
from recmill.sql import connect, identifier, literal

if TYPE_CHECKING:
    import duckdb

    from recmill.config import ValidationConfig

TABLES = ("events", "items", "users")
OLDEST = datetime(1970, 1, 2)  # anything earlier is an epoch-0 or unit mix-up
TIMESTAMP_TYPES = ("TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S")
FLOAT_TYPES = ("FLOAT", "DOUBLE")
NUMERIC_TYPES = FLOAT_TYPES + ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")
SHOWN_ROWS = 10  # row labels listed per failure in the summary
ROW_LABELS = 1000  # failing rows labelled per failure (the count of them is always exact)
ROW = "_recmill_row"  # each row's 0-based position in its table, beside the table's columns


@dataclass
class Failure:
    table: str
    expectation: str  # GE type name, e.g. expect_column_values_to_be_in_set
    column: str | None
    description: str
    unexpected_count: int | None  # None for table-level checks (row count, distinct users...)
    element_count: int | None
    rows: list[str] = field(default_factory=list)  # labels of the failing rows, the first ROW_LABELS
    examples: pd.DataFrame = field(default_factory=pd.DataFrame)

    def headline(self) -> str:
        text = self.description
        if self.unexpected_count is None:
            return text
        text += f": {self.unexpected_count} of {self.element_count} rows fail"
        if self.rows:
            # "line 4", "line 9" -> "(lines 4, 9)"
            word = self.rows[0].split(" ")[0]
            numbers = [r.split(" ", 1)[-1] for r in self.rows[:SHOWN_ROWS]]
            total = max(len(self.rows), self.unexpected_count)  # rows holds at most ROW_LABELS
            more = f", ... {total - SHOWN_ROWS} more" if total > SHOWN_ROWS else ""
            text += f" ({word}{'s' if len(self.rows) > 1 else ''} {', '.join(numbers)}{more})"
        return text

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in ("table", "expectation", "column", "description", "unexpected_count", "element_count", "rows")}
        out["examples"] = json.loads(self.examples.to_json(orient="records", date_format="iso"))
        return out


@dataclass
class ValidationReport:
    success: bool
    failures: list[Failure]
    results: dict[str, dict]  # table -> GE suite validation result as a JSON-able dict
    # table -> (expectations evaluated, expectations failed, file it came from)
    counts: dict[str, tuple[int, int, str | None]] = field(default_factory=dict)

    def summary(self) -> str:
        lines = []
        for table, (evaluated, failed, path) in self.counts.items():
            where = f" ({path})" if path else ""
            if not failed:
                lines.append(f"Validation passed: {evaluated} expectations on {table}{where}")
                continue
            lines.append(f"Validation failed: {failed} of {evaluated} expectations on {table}{where}")
            for f in self.failures:
                if f.table == table:
                    lines.append(f"- {f.headline()}")
                    if not f.examples.empty:
                        lines += ["    " + line for line in f.examples.to_string(index=False).splitlines()]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"success": self.success, "failures": [f.to_dict() for f in self.failures], "results": self.results}


@dataclass
class Check:
    """One check on one table, in SQL, with the GE type name a failure is reported under.

    A row check has ``failing``, a predicate true for the rows that fail among those where
    ``where`` holds; a table-level check has ``observed`` (an aggregate) and ``minimum``;
    a check that a column exists is decided from the schema alone: ``broken``.
    ``where_args`` and ``args`` are bound to the ?s of ``where`` and of ``failing``.
    """

    key: str  # names the check's column in the frame GE judges
    expectation: str
    message: str  # "{observed}" is filled in with the observed value
    column: str | None = None
    failing: str | None = None
    where: str = "TRUE"
    where_args: tuple = ()
    args: tuple = ()
    observed: str | None = None
    minimum: int | None = None
    broken: bool = False


def _utc_naive(now: datetime | None) -> datetime:
    # Canonical timestamps are naive UTC, so compare against naive UTC.
    now = now or datetime.now(timezone.utc)
    return now.astimezone(timezone.utc).replace(tzinfo=None) if now.tzinfo else now


def _expect(name: str, message: str, report_column: str | None = None, **kwargs):
    """Expectation class ``name`` carrying its failure message ({observed} is filled in)."""
    import great_expectations as gx

    meta = {"message": message}
    if report_column:
        meta["column"] = report_column
    return getattr(gx.expectations, name)(meta=meta, **kwargs)


def _missing(column: str, sql_type: str) -> str:
    """SQL: the value is missing (pandas counts NaN as missing, so NaN is missing here too)."""
    q = identifier(column)
    return f"({q} IS NULL OR isnan({q}))" if sql_type in FLOAT_TYPES else f"{q} IS NULL"


def _exists(cols: dict[str, str], column: str) -> Check:
    return Check(f"{column}_column_absent", "expect_column_to_exist", f"column '{column}' is missing", column, broken=column not in cols)


def _not_null(cols: dict[str, str], column: str) -> Check:
    return Check(f"{column}_missing", "expect_column_values_to_not_be_null", f"{column} is missing", column, failing=_missing(column, cols[column]))


def _of_type(cols: dict[str, str], column: str, types: tuple[str, ...], key: str, sentence: str) -> Check:
    """A column of the wrong type fails on every row with a value, which shows those values."""
    wrong = f"NOT {_missing(column, cols[column])}" if cols[column] not in types else "FALSE"
    return Check(key, "expect_column_values_to_be_in_type_list", f"{sentence} (column type is {cols[column]})", column, failing=wrong)


def _unique(table: str, column: str) -> Check:
    q = identifier(column)
    repeated = f"SELECT {q} FROM {table} WHERE {q} IS NOT NULL GROUP BY {q} HAVING count(*) > 1"
    return Check(f"{column}_repeated", "expect_column_values_to_be_unique", f"{column} is not unique", column, failing=f"{q} IN ({repeated})")


def _enough(what: str, need: int, column: str | None = None) -> Check:
    """At least ``need`` rows, or distinct values of ``column``."""
    key, expectation, observed = "row_count", "expect_table_row_count_to_be_between", "count(*)"
    if column:
        key, expectation, observed = f"distinct_{column}", "expect_column_unique_value_count_to_be_between", f"count(DISTINCT {identifier(column)})"
    return Check(key, expectation, f"too few {what} to train: {{observed}}, need at least {need}", column, observed=observed, minimum=need)


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    """Column -> DuckDB type of ``table``, without the row position column."""
    return {name: kind for name, kind, *_ in con.execute(f"DESCRIBE {table}").fetchall() if name != ROW}


def _event_checks(cols: dict[str, str], items: dict[str, str] | None, cfg: ValidationConfig, now: datetime) -> list[Check]:
    out = [_exists(cols, c) for c in S.EVENT_COLUMNS]
    # Checks on a missing column, or range checks on a column of the wrong type, could not
    # run; the existence and type checks already name the problem.
    out += [_not_null(cols, c) for c in (S.USER_ID, S.ITEM_ID, S.TIMESTAMP, S.EVENT_TYPE, S.VALUE) if c in cols]
    ts, kind, value = (identifier(c) for c in (S.TIMESTAMP, S.EVENT_TYPE, S.VALUE))
    if S.TIMESTAMP in cols:
        out.append(_of_type(cols, S.TIMESTAMP, TIMESTAMP_TYPES, "timestamp_not_datetime", "timestamp must be a datetime"))
        if cols[S.TIMESTAMP] in TIMESTAMP_TYPES:
            stamp = now.isoformat(sep=" ", timespec="seconds")
            out.append(Check("timestamp_in_future", "expect_column_values_to_be_between", f"timestamp is in the future (after {stamp})", S.TIMESTAMP, failing=f"{ts} > ?", args=(now,)))
            out.append(Check("timestamp_too_old", "expect_column_values_to_be_between", f"timestamp is before {OLDEST:%Y-%m-%d}", S.TIMESTAMP, failing=f"{ts} < ?", args=(OLDEST,)))
    if S.EVENT_TYPE in cols:
        out.append(Check("event_type_unknown", "expect_column_values_to_be_in_set", f"event_type must be one of {', '.join(S.EVENT_TYPES)}", S.EVENT_TYPE,
                         failing=f"{kind} IS NOT NULL AND NOT list_contains(?, CAST({kind} AS VARCHAR))", args=(list(S.EVENT_TYPES),)))
    if S.VALUE in cols:
        out.append(_of_type(cols, S.VALUE, NUMERIC_TYPES, "value_not_numeric", "value must be numeric"))
        if S.EVENT_TYPE in cols and cols[S.VALUE] in NUMERIC_TYPES:
            has_value = f"NOT {_missing(S.VALUE, cols[S.VALUE])}"
            rating = f"CAST({kind} AS VARCHAR) = ?"
            lo, hi = cfg.rating_min, cfg.rating_max
            out.append(Check("rating_out_of_range", "expect_column_values_to_be_between", f"rating value must be between {lo} and {hi}", S.VALUE,
                             failing=f"{has_value} AND ({value} < ? OR {value} > ?)", where=rating, where_args=("rating",), args=(lo, hi)))
            # Above the largest float is +inf; NaN fails the not-null check.
            out.append(Check("value_negative_or_infinite", "expect_column_values_to_be_between", "value must be a finite number >= 0 for non-rating events", S.VALUE,
                             failing=f"{has_value} AND ({value} < 0 OR {value} > ?)", where=f"CAST({kind} AS VARCHAR) IS DISTINCT FROM ?", where_args=("rating",), args=(sys.float_info.max,)))
    if items is not None and S.ITEM_ID in items and S.ITEM_ID in cols:
        q = identifier(S.ITEM_ID)
        # Compare as text when the two tables disagree on the type, as pandas' isin would.
        ev, it = (q, q) if items[S.ITEM_ID] == cols[S.ITEM_ID] else (f"CAST({q} AS VARCHAR)",) * 2
        out.append(Check("item_id_unknown", "expect_column_values_to_be_in_set", "item_id not found in the items table", S.ITEM_ID,
                         failing=f"{q} IS NOT NULL AND {ev} NOT IN (SELECT {it} FROM items WHERE {q} IS NOT NULL)"))
    present = [c for c in S.EVENT_COLUMNS if c in cols]
    if present:
        # Every copy of a repeated row fails, the first one too; missing values count as equal.
        group = ", ".join(map(identifier, present))
        repeated = f"SELECT row({group}) FROM events GROUP BY {group} HAVING count(*) > 1"
        out.append(Check("duplicate_events", "expect_compound_columns_to_be_unique", "exact duplicate events (all of " + ", ".join(present) + " equal)", failing=f"row({group}) IN ({repeated})"))
    out.append(_enough("events", cfg.min_events))
    for c, what, need in ((S.USER_ID, "users", cfg.min_users), (S.ITEM_ID, "items", cfg.min_items)):
        if c in cols:
            out.append(_enough(what, need, c))
    return out


def _id_checks(table: str, cols: dict[str, str], id_col: str) -> list[Check]:
    out = [_exists(cols, id_col)]
    if id_col in cols:
        out += [_not_null(cols, id_col), _unique(table, id_col)]
    return out


def _item_checks(cols: dict[str, str]) -> list[Check]:
    out = _id_checks("items", cols, S.ITEM_ID)
    if cols.get("price") in NUMERIC_TYPES:
        price = identifier("price")
        out.append(Check("price_negative", "expect_column_values_to_be_between", "price must be >= 0", "price", failing=f"NOT {_missing('price', cols['price'])} AND {price} < 0"))
    return out


def _measure(con: duckdb.DuckDBPyConnection, table: str, checks: list[Check]) -> dict[str, tuple]:
    """key -> (rows checked, rows failing) of a row check, (None, observed value) of a
    table-level check, (None, 1 or 0) of a column check: one pass over the table for all."""
    terms, args = [], []
    for c in checks:
        if c.failing is not None:
            terms += [f"count(*) FILTER (WHERE {c.where})", f"count(*) FILTER (WHERE ({c.where}) AND ({c.failing}))"]
            args += [*c.where_args, *c.where_args, *c.args]
        elif c.observed is not None:
            terms += ["NULL", c.observed]
    values = iter(con.execute(f"SELECT {', '.join(terms)} FROM {table}", args).fetchone() if terms else ())
    return {c.key: (None, int(c.broken)) if c.failing is None and c.observed is None else (next(values), next(values)) for c in checks}


def _failing_rows(con: duckdb.DuckDBPyConnection, table: str, cols: dict[str, str], check: Check) -> pd.DataFrame:
    """The first ROW_LABELS failing rows of a row check, all columns, indexed by row position."""
    sql = f"SELECT * FROM {table} WHERE ({check.where}) AND ({check.failing}) ORDER BY {ROW} LIMIT ?"
    rows = con.execute(sql, [*check.where_args, *check.args, ROW_LABELS]).df()
    text = [c for c, kind in cols.items() if kind == "VARCHAR"]
    return rows.astype(dict.fromkeys(text, ID_DTYPE)).set_index(ROW).rename_axis(None)  # text as in the canonical frames


def _judge(source, table: str, checks: list[Check], measured: dict[str, tuple]):
    """Great-expectations' verdict on one table: a one-row frame holds each check's failing
    rows (or observed value) in a column named after it, and the suite says that none fail
    and that the observed values reach their minimum."""
    import great_expectations as gx

    frame = pd.DataFrame({c.key: [measured[c.key][1]] for c in checks}, dtype="int64")
    suite = gx.ExpectationSuite(
        name=table,
        expectations=[
            _expect("ExpectColumnMinToBeBetween", c.message, report_column=c.column, column=c.key, min_value=c.minimum)
            if c.observed is not None
            else _expect("ExpectColumnMaxToBeBetween", c.message, report_column=c.column, column=c.key, max_value=0)
            for c in checks
        ],
    )
    batch = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe(table).get_batch(batch_parameters={"dataframe": frame})
    return batch.validate(suite, result_format={"result_format": "SUMMARY"})


def _context():
    # Offline batch job: no usage statistics, no progress bars on the terminal.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # not its temporary folders, each run
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


def validate_relations(con: duckdb.DuckDBPyConnection, cfg: ValidationConfig, now: datetime | None = None, origins: dict[str, Origin] | None = None) -> ValidationReport:
    """Check the relations ``events`` (required), ``items`` and ``users`` (each checked when it
    exists) on ``con``: each has its table's columns plus ROW, the row's position in the
    table. ``origins`` name the files the tables came from, for the row labels."""
    now, origins = _utc_naive(now), origins or {}
    present = {name for (name,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    cols = {name: _columns(con, name) for name in TABLES if name in present or name == "events"}
    suites = {"events": _event_checks(cols["events"], cols.get("items"), cfg, now)}
    if "items" in cols:
        suites["items"] = _item_checks(cols["items"])
    if "users" in cols:
        suites["users"] = _id_checks("users", cols["users"], S.USER_ID)

    source = _context().data_sources.add_pandas("recmill")
    report = ValidationReport(success=True, failures=[], results={})
    for table, checks in suites.items():
        measured = _measure(con, table, checks)
        result = _judge(source, table, checks, measured)
        report.results[table] = result.to_json_dict()
        verdict = {r.expectation_config.kwargs["column"]: r for r in result.results}
        origin = origins.get(table)
        failed = 0
        for check in checks:
            r = verdict[check.key]
            if r.success:
                continue
            failed += 1
            description = check.message.replace("{observed}", str(measured[check.key][1]))
            if (r.exception_info or {}).get("raised_exception"):
                description += f" (could not be checked: {r.exception_info.get('exception_message')})"
            failure = Failure(table, check.expectation, check.column, description, None, None)
            if check.failing is not None:
                failure.element_count, failure.unexpected_count = measured[check.key]
                rows = _failing_rows(con, table, cols[table], check)
                failure.rows = [origin.row_label(int(i)) if origin else f"row {i}" for i in rows.index]
                failure.examples = rows.head(cfg.example_rows)
            report.failures.append(failure)
        report.counts[table] = (len(result.results), failed, origin.path if origin else None)
        report.success = report.success and bool(result.success)
    return report


def validate_tables(tables: Tables, cfg: ValidationConfig, now: datetime | None = None) -> ValidationReport:
    """Check the canonical tables held as frames (items and users when not empty); writes nothing."""
    con = connect()
    try:
        for name in TABLES:
            df = getattr(tables, name)
            if name == "events" or len(df):
                con.register(name, df.reset_index(drop=True).assign(**{ROW: np.arange(len(df))}))
        return validate_relations(con, cfg, now, tables.origins)
    finally:
        con.close()


def validate_files(directory: Path, cfg: ValidationConfig, now: datetime | None = None, memory_limit: str = "4GB", threads: int = 2, temp_directory: Path | None = None) -> ValidationReport:
    """Check the canonical tables in ``directory`` ({events,items,users}.parquet and
    origins.json, as io.write_tables writes them) out of core: DuckDB works under
    ``memory_limit`` and spills to ``temp_directory``. Writes nothing."""
    directory = Path(directory)
    origins_file = directory / "origins.json"
    origins = {k: Origin(**v) for k, v in json.loads(origins_file.read_text()).items()} if origins_file.exists() else {}
    con = connect(memory_limit, threads, temp_directory)
    try:
        for name in TABLES:
            path = directory / f"{name}.parquet"
            if name == "events" or (path.exists() and con.execute("SELECT count(*) FROM read_parquet(?)", [str(path)]).fetchone()[0]):
                # DuckDB takes no bound parameter in a view, hence the quoted literal.
                con.execute(f"CREATE TEMP VIEW {name} AS SELECT * RENAME (file_row_number AS {ROW}) FROM read_parquet({literal(path)}, file_row_number = true)")
        return validate_relations(con, cfg, now, origins)
    finally:
        con.close()


def write_report(report: ValidationReport, report_dir: Path) -> Path:
    """Write validation_result.json (GE results, success, failures) and summary.txt."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / "validation_result.json"
    path.write_text(json.dumps(report.to_dict(), indent=2, default=str))
    (report_dir / "summary.txt").write_text(report.summary() + "\n")
    return path


def write_load_failure(error: DataLoadError, report_dir: Path) -> Path:
    """The report of a source that could not be read at all: validation_result.json (the
    file, column and rows at fault) and summary.txt, in place of the suites' results."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / "validation_result.json"
    result = {"success": False, "stage": "load", "file": error.path, "column": error.column, "rows": error.rows, "error": str(error)}
    path.write_text(json.dumps(result, indent=2))
    (report_dir / "summary.txt").write_text(f"Loading failed: {error}\n")
    return path


def _raise_if_failed(report: ValidationReport, report_dir: Path) -> ValidationReport:
    path = write_report(report, report_dir)
    if not report.success:
        raise ValidationFailed(report.summary(), path)
    return report


def check_tables(tables: Tables, cfg: ValidationConfig, report_dir: Path, now: datetime | None = None) -> ValidationReport:
    """Validate, always write the report, and raise ValidationFailed when a suite failed."""
    return _raise_if_failed(validate_tables(tables, cfg, now), report_dir)


def check_files(directory: Path, cfg: ValidationConfig, report_dir: Path, now: datetime | None = None, **duckdb_settings) -> ValidationReport:
    """validate_files (``duckdb_settings``: memory_limit, threads, temp_directory), always
    write the report, and raise ValidationFailed when a suite failed."""
    return _raise_if_failed(validate_files(directory, cfg, now, **duckdb_settings), report_dir)
