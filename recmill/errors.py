"""Errors a user can act on. Each names what is wrong and where."""

from __future__ import annotations


class RecmillError(Exception):
    """Base class: the CLI prints these without a traceback and exits non-zero."""


class ConfigError(RecmillError):
    """A bad params.yaml key or value, or a bad --set override."""


class DataLoadError(RecmillError):
    """A source file that cannot be read into the canonical tables.

    The message names the file, the column and the rows at fault: file line numbers for
    text files (the header is line 1), row indexes for parquet.
    """

    def __init__(self, path, message: str, column: str | None = None, rows=None):
        self.message = message
        self.path = str(path)
        self.column = column
        self.rows = list(rows)[:10] if rows is not None else []
        where = f"{self.path}"
        if column:
            where += f", column '{column}'"
        if self.rows:
            # text files are pointed at by line number (header = line 1), parquet by row index
            unit = "row" if self.path.endswith(".parquet") else "line"
            where += f", {unit}{'s' if len(self.rows) > 1 else ''} {', '.join(str(r) for r in self.rows)}"
        super().__init__(f"{where}: {message}")


class ValidationFailed(RecmillError):
    """A great-expectations suite failed on the canonical tables."""

    def __init__(self, summary: str, report_path=None):
        self.summary = summary
        self.report_path = str(report_path) if report_path else None
        msg = summary
        if report_path:
            msg += f"\nFull result: {report_path}"
        super().__init__(msg)


class PublishFailed(RecmillError):
    """The new warehouse file could not be written (a full disk, an IO error); the previous one is untouched."""


class RunInProgress(RecmillError):
    """Another run holds the data folder or the warehouse this run would use."""


class IntegrityError(RecmillError):
    """A saved model whose files changed after it was saved (or lost one)."""


class NotFittedError(RecmillError):
    """A model used before fit() or load()."""


class ModelSkipped(RecmillError):
    """A model that cannot or should not train on this data; the run goes on without it."""
