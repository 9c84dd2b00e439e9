"""Great-expectations suites on the canonical tables, run before anything trains.

One suite per table (events, items, users), one batch per table, one validate call per
suite. Every expectation carries a plain-words message in its ``meta`` so a failure reads
"event_type must be one of view, cart, purchase, rating", not a GE type name.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from recmill import schema as S
from recmill.data.tables import Tables
from recmill.errors import ValidationFailed

if TYPE_CHECKING:
    from recmill.config import ValidationConfig

OLDEST = datetime(1970, 1, 2)  # anything earlier is an epoch-0 or unit mix-up
DATETIME_TYPES = ["datetime64[ns]", "datetime64[us]", "datetime64[ms]", "datetime64[s]"]
NUMERIC_TYPES = ["float64", "float32", "int64", "int32", "Float64", "Int64", "Int32"]
SHOWN_ROWS = 10  # row labels listed per failure in the summary
# Flag column added to the copy of events that GE checks: item_id is in the items table (or
# missing). GE copies and compares an expectation's arguments over and over, so an in-set
# check with the whole catalogue as value_set takes ~10 s on 50k items; a flag is instant.
KNOWN_ITEM = "_item_id_in_items"


@dataclass
class Failure:
    table: str
    expectation: str  # GE type name, e.g. expect_column_values_to_be_in_set
    column: str | None
    description: str
    unexpected_count: int | None  # None for table-level checks (row count, distinct users...)
    element_count: int | None
    rows: list[str] = field(default_factory=list)  # labels of every failing row
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
            more = f", ... {len(self.rows) - SHOWN_ROWS} more" if len(self.rows) > SHOWN_ROWS else ""
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


def _events_suite(events: pd.DataFrame, cfg: ValidationConfig, now: datetime) -> list:
    from great_expectations.expectations.row_conditions import Column

    cols = set(events.columns)
    out = [_expect("ExpectColumnToExist", f"column '{c}' is missing", column=c) for c in S.EVENT_COLUMNS]
    # Checks on a missing column, or range checks on a column of the wrong type, would only
    # raise inside GE; the existence and type checks already name the problem.
    for c in (S.USER_ID, S.ITEM_ID, S.TIMESTAMP, S.EVENT_TYPE, S.VALUE):
        if c in cols:
            out.append(_expect("ExpectColumnValuesToNotBeNull", f"{c} is missing", column=c))
    if S.TIMESTAMP in cols:
        out.append(_expect("ExpectColumnValuesToBeInTypeList", f"timestamp must be a datetime (column type is {events[S.TIMESTAMP].dtype})", column=S.TIMESTAMP, type_list=DATETIME_TYPES))
        if pd.api.types.is_datetime64_dtype(events[S.TIMESTAMP]):
            stamp = now.isoformat(sep=" ", timespec="seconds")
            out.append(_expect("ExpectColumnValuesToBeBetween", f"timestamp is in the future (after {stamp})", column=S.TIMESTAMP, max_value=now))
            out.append(_expect("ExpectColumnValuesToBeBetween", f"timestamp is before {OLDEST:%Y-%m-%d}", column=S.TIMESTAMP, min_value=OLDEST))
    if S.EVENT_TYPE in cols:
        out.append(_expect("ExpectColumnValuesToBeInSet", f"event_type must be one of {', '.join(S.EVENT_TYPES)}", column=S.EVENT_TYPE, value_set=list(S.EVENT_TYPES)))
    if S.VALUE in cols:
        out.append(_expect("ExpectColumnValuesToBeInTypeList", f"value must be numeric (column type is {events[S.VALUE].dtype})", column=S.VALUE, type_list=NUMERIC_TYPES))
        if S.EVENT_TYPE in cols and pd.api.types.is_numeric_dtype(events[S.VALUE]):
            lo, hi = cfg.rating_min, cfg.rating_max
            rating = Column(S.EVENT_TYPE) == "rating"
            out.append(_expect("ExpectColumnValuesToBeBetween", f"rating value must be between {lo} and {hi}", column=S.VALUE, min_value=lo, max_value=hi, row_condition=rating))
            # The largest float as upper bound rejects +inf; NaN fails the not-null check.
            out.append(_expect("ExpectColumnValuesToBeBetween", "value must be a finite number >= 0 for non-rating events", column=S.VALUE, min_value=0, max_value=sys.float_info.max, row_condition=Column(S.EVENT_TYPE) != "rating"))
    if KNOWN_ITEM in cols:
        out.append(_expect("ExpectColumnValuesToBeInSet", "item_id not found in the items table", report_column=S.ITEM_ID, column=KNOWN_ITEM, value_set=[True]))
    present = [c for c in S.EVENT_COLUMNS if c in cols]
    out.append(_expect("ExpectCompoundColumnsToBeUnique", "exact duplicate events (all of " + ", ".join(present) + " equal)", column_list=present))
    out.append(_expect("ExpectTableRowCountToBeBetween", f"too few events to train: {{observed}}, need at least {cfg.min_events}", min_value=cfg.min_events))
    for c, what, need in ((S.USER_ID, "users", cfg.min_users), (S.ITEM_ID, "items", cfg.min_items)):
        if c in cols:
            out.append(_expect("ExpectColumnUniqueValueCountToBeBetween", f"too few {what} to train: {{observed}}, need at least {need}", column=c, min_value=need))
    return out


def _id_suite(df: pd.DataFrame, id_col: str) -> list:
    out = [_expect("ExpectColumnToExist", f"column '{id_col}' is missing", column=id_col)]
    if id_col in df:
        out.append(_expect("ExpectColumnValuesToNotBeNull", f"{id_col} is missing", column=id_col))
        out.append(_expect("ExpectColumnValuesToBeUnique", f"{id_col} is not unique", column=id_col))
    return out


def _items_suite(items: pd.DataFrame) -> list:
    out = _id_suite(items, S.ITEM_ID)
    if "price" in items and pd.api.types.is_numeric_dtype(items["price"]):
        out.append(_expect("ExpectColumnValuesToBeBetween", "price must be >= 0", column="price", min_value=0))
    return out


def _context():
    # Offline batch job: no usage statistics, no progress bars on the terminal.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


def _failure(table: str, r, df: pd.DataFrame, tables: Tables, cfg: ValidationConfig) -> Failure:
    conf = r.expectation_config
    meta = conf.meta or {}
    res = r.result or {}
    description = meta.get("message", conf.type).replace("{observed}", str(res.get("observed_value")))
    if (r.exception_info or {}).get("raised_exception"):
        description += f" (could not be checked: {r.exception_info.get('exception_message')})"
    index = list(res.get("unexpected_index_list") or [])
    origin = tables.origins.get(table)
    return Failure(
        table=table,
        expectation=conf.type,
        column=meta.get("column", conf.kwargs.get("column")),
        description=description,
        unexpected_count=res.get("unexpected_count"),
        element_count=res.get("element_count"),
        rows=[origin.row_label(i) if origin else f"row {i}" for i in index],
        examples=df.iloc[index[: cfg.example_rows]],
    )


def validate_tables(tables: Tables, cfg: ValidationConfig, now: datetime | None = None) -> ValidationReport:
    """Run the suites on the canonical tables; writes nothing."""
    now = _utc_naive(now)
    # Positional index, so GE's unexpected_index_list are canonical row numbers.
    frames = {"events": tables.events.reset_index(drop=True)}
    for name in ("items", "users"):
        if len(getattr(tables, name)):
            frames[name] = getattr(tables, name).reset_index(drop=True)

    checked = dict(frames)  # what GE sees; failures show rows of `frames`
    items, events = frames.get("items"), frames["events"]
    if items is not None and S.ITEM_ID in items and S.ITEM_ID in events:
        known = events[S.ITEM_ID].isin(items[S.ITEM_ID].dropna()) | events[S.ITEM_ID].isna()
        checked["events"] = events.assign(**{KNOWN_ITEM: known})
    suites = {
        "events": _events_suite(checked["events"], cfg, now),
        "items": _items_suite(frames.get("items", pd.DataFrame())),
        "users": _id_suite(frames.get("users", pd.DataFrame()), S.USER_ID),
    }

    import great_expectations as gx

    source = _context().data_sources.add_pandas("recmill")
    report = ValidationReport(success=True, failures=[], results={})
    for table, df in checked.items():
        suite = gx.ExpectationSuite(name=table, expectations=suites[table])
        batch = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe(table).get_batch(batch_parameters={"dataframe": df})
        result = batch.validate(suite, result_format={"result_format": "COMPLETE"})
        report.results[table] = result.to_json_dict()
        # GE groups results by column; list failures in suite order (messages are unique).
        order = {e.meta["message"]: i for i, e in enumerate(suites[table])}
        failed = sorted((r for r in result.results if not r.success), key=lambda r: order[r.expectation_config.meta["message"]])
        report.failures += [_failure(table, r, frames[table], tables, cfg) for r in failed]
        origin = tables.origins.get(table)
        report.counts[table] = (len(result.results), len(failed), origin.path if origin else None)
        report.success = report.success and bool(result.success)
    return report


def write_report(report: ValidationReport, report_dir: Path) -> Path:
    """Write validation_result.json (GE results, success, failures) and summary.txt."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / "validation_result.json"
    path.write_text(json.dumps(report.to_dict(), indent=2, default=str))
    (report_dir / "summary.txt").write_text(report.summary() + "\n")
    return path


def check_tables(tables: Tables, cfg: ValidationConfig, report_dir: Path, now: datetime | None = None) -> ValidationReport:
    """Validate, always write the report, and raise ValidationFailed when a suite failed."""
    report = validate_tables(tables, cfg, now)
    path = write_report(report, report_dir)
    if not report.success:
        raise ValidationFailed(report.summary(), path)
    return report
