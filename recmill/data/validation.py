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


@dataclass
class Failure:
    table: str
    expectation: str
    column: str | None
    description: str
    unexpected_count: int | None
    element_count: int | None
    rows: list[str] = field(default_factory=list)
    examples: pd.DataFrame = field(default_factory=pd.DataFrame)

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in ("table", "expectation", "column", "description", "unexpected_count", "element_count", "rows")}
        out["examples"] = json.loads(self.examples.to_json(orient="records", date_format="iso"))
        return out

    def headline(self) -> str:
        text = self.description
        if self.unexpected_count is not None:
            text += f": {self.unexpected_count} of {self.element_count} rows fail"
            if self.rows:
                shown = ", ".join(self.rows[:SHOWN_ROWS])
                more = f", ... {len(self.rows) - SHOWN_ROWS} more" if len(self.rows) > SHOWN_ROWS else ""
                kind = "lines" if self.rows[0].startswith("line ") else "rows"
                text += f" ({kind} {shown.replace('line ', '').replace('row ', '')}{more})"
        return text


@dataclass
class ValidationReport:
    success: bool
    failures: list[Failure]
    results: dict[str, dict]  # table -> GE suite validation result as a JSON-able dict
    # table -> (expectations evaluated, failed, where the table came from)
    counts: dict[str, tuple[int, int, str | None]] = field(default_factory=dict)

    def summary(self) -> str:
        lines = []
        for table, (evaluated, failed, path) in self.counts.items():
            where = f" ({path})" if path else ""
            if not failed:
                lines.append(f"Validation passed: {evaluated} expectations on {table}{where}")
                continue
            lines.append(f"Validation failed: {failed} of {evaluated} expectations on {table}{where}")
            for f in (f for f in self.failures if f.table == table):
                lines.append(f"- {f.headline()}")
                if not f.examples.empty:
                    text = f.examples.to_string(index=False)
                    lines.extend("    " + line for line in text.splitlines())
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"success": self.success, "failures": [f.to_dict() for f in self.failures], "results": self.results}


def _utc_naive(now: datetime | None) -> datetime:
    # Canonical timestamps are naive UTC, so compare against naive UTC.
    now = now or datetime.now(timezone.utc)
    return now.astimezone(timezone.utc).replace(tzinfo=None) if now.tzinfo else now


def _expect(name: str, message: str, **kwargs):
    """An expectation of class ``name`` carrying the failure message (may use {observed})."""
    import great_expectations as gx

    return getattr(gx.expectations, name)(meta={"message": message}, **kwargs)


def _events_suite(events: pd.DataFrame, item_ids: pd.Series | None, cfg: ValidationConfig, now: datetime) -> list:
    from great_expectations.expectations.row_conditions import Column

    cols = set(events.columns)
    out = [_expect("ExpectColumnToExist", f"column '{c}' is missing", column=c) for c in S.EVENT_COLUMNS]
    out += [
        _expect("ExpectColumnValuesToNotBeNull", f"{c} is missing", column=c)
        for c in (S.USER_ID, S.ITEM_ID, S.TIMESTAMP, S.EVENT_TYPE, S.VALUE)
        if c in cols
    ]
    if S.TIMESTAMP in cols:
        out.append(_expect("ExpectColumnValuesToBeInTypeList", "timestamp must be a datetime (got {observed})", column=S.TIMESTAMP, type_list=DATETIME_TYPES))
        # Range checks on a column of the wrong type would only raise.
        if pd.api.types.is_datetime64_dtype(events[S.TIMESTAMP]):
            stamp = now.isoformat(sep=" ", timespec="seconds")
            out.append(_expect("ExpectColumnValuesToBeBetween", f"timestamp is in the future (after {stamp})", column=S.TIMESTAMP, max_value=now))
            out.append(_expect("ExpectColumnValuesToBeBetween", f"timestamp is before {OLDEST:%Y-%m-%d}", column=S.TIMESTAMP, min_value=OLDEST))
    if S.EVENT_TYPE in cols:
        out.append(_expect("ExpectColumnValuesToBeInSet", f"event_type must be one of {', '.join(S.EVENT_TYPES)}", column=S.EVENT_TYPE, value_set=list(S.EVENT_TYPES)))
    if S.VALUE in cols:
        out.append(_expect("ExpectColumnValuesToBeInTypeList", "value must be numeric (got {observed})", column=S.VALUE, type_list=NUMERIC_TYPES))
        if S.EVENT_TYPE in cols and pd.api.types.is_numeric_dtype(events[S.VALUE]):
            lo, hi = cfg.rating_min, cfg.rating_max
            out.append(_expect("ExpectColumnValuesToBeBetween", f"rating value must be between {lo} and {hi}", column=S.VALUE, min_value=lo, max_value=hi, row_condition=Column(S.EVENT_TYPE) == "rating"))
            # The largest float as upper bound rejects +inf; NaN is left to the not-null check.
            out.append(_expect("ExpectColumnValuesToBeBetween", "value must be a finite number >= 0 for view, cart and purchase events", column=S.VALUE, min_value=0, max_value=sys.float_info.max, row_condition=Column(S.EVENT_TYPE) != "rating"))
    if item_ids is not None and S.ITEM_ID in cols:
        out.append(_expect("ExpectColumnValuesToBeInSet", "item_id not found in the items table", column=S.ITEM_ID, value_set=item_ids.dropna().unique().tolist()))
    present = [c for c in S.EVENT_COLUMNS if c in cols]
    out.append(_expect("ExpectCompoundColumnsToBeUnique", f"exact duplicate events (same {', '.join(present)})", column_list=present))
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
    res = r.result or {}
    observed = res.get("observed_value")
    description = (conf.meta or {}).get("message", conf.type).replace("{observed}", str(observed))
    info = r.exception_info or {}
    if info.get("raised_exception"):
        description += f" (could not be checked: {info.get('exception_message')})"
    index = list(res.get("unexpected_index_list") or [])
    origin = tables.origins.get(table)
    rows = [origin.row_label(i) if origin else f"row {i}" for i in index]
    examples = df.loc[index[: cfg.example_rows]] if index else df.iloc[0:0]
    return Failure(
        table=table,
        expectation=conf.type,
        column=conf.kwargs.get("column"),
        description=description,
        unexpected_count=res.get("unexpected_count"),
        element_count=res.get("element_count"),
        rows=rows,
        examples=examples,
    )


def validate_tables(tables: Tables, cfg: ValidationConfig, now: datetime | None = None) -> ValidationReport:
    """Run the suites on the canonical tables; writes nothing."""
    import great_expectations as gx

    now = _utc_naive(now)
    frames = {"events": tables.events.reset_index(drop=True)}
    if len(tables.items):
        frames["items"] = tables.items.reset_index(drop=True)
    if len(tables.users):
        frames["users"] = tables.users.reset_index(drop=True)
    item_ids = frames["items"][S.ITEM_ID] if "items" in frames and S.ITEM_ID in frames["items"] else None
    suites = {
        "events": _events_suite(frames["events"], item_ids, cfg, now),
        "items": _items_suite(frames.get("items", pd.DataFrame())),
        "users": _id_suite(frames.get("users", pd.DataFrame()), S.USER_ID),
    }

    context = _context()
    source = context.data_sources.add_pandas("recmill")
    report = ValidationReport(success=True, failures=[], results={})
    for table, df in frames.items():
        suite = gx.ExpectationSuite(name=table)
        for expectation in suites[table]:
            suite.add_expectation(expectation)
        batch = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe(table).get_batch(batch_parameters={"dataframe": df})
        result = batch.validate(suite, result_format={"result_format": "COMPLETE"})
        report.results[table] = result.to_json_dict()
        failed = [_failure(table, r, df, tables, cfg) for r in result.results if not r.success]
        report.failures += failed
        origin = tables.origins.get(table)
        report.counts[table] = (len(result.results), len(failed), origin.path if origin else None)
        report.success = report.success and result.success
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

