"""Ingest: read the source for a data window and write a Parquet snapshot.

Also home of what every reader of the source shares: ``to_times`` (the time column as UTC times),
``filter_window``, the SQL window binds and the translation of SQL errors that retrying cannot fix.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pandas as pd

from airflow_mlc.core import storage
from airflow_mlc.core.window import Window
from airflow_mlc.errors import BadInputError, DataError, EmptyWindowError
from airflow_mlc.spec import TIME_UNITS, SourceSpec

#: Values shown in an error message about a column's values.
EXAMPLES = 3
#: Characters of a query shown in an error message.
QUERY_CHARS = 200
#: What ``pd.api.types.infer_dtype`` calls a column of numbers.
_NUMBER_KINDS = {"integer", "floating", "mixed-integer-float", "decimal"}
#: What it calls a column of date-time objects.
_DATETIME_KINDS = {"datetime64", "datetime", "date"}
#: PostgreSQL SQLSTATEs of an undefined table, an undefined column and a syntax error.
_QUERY_SQLSTATES = {"42P01", "42703", "42601"}
#: Messages of SQLite (and others) that say the query itself is wrong.
_QUERY_MESSAGES = ("no such table", "no such column", "syntax error")
_UNIT_NAMES = {
    "year": "calendar years (whole numbers from 1678 to 2262)",
    "s": "seconds since 1970-01-01",
    "ms": "milliseconds since 1970-01-01",
}
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_PER_SECOND = {"s": 1, "ms": 1_000}


@dataclass(frozen=True)
class IngestResult:
    uri: str
    rows: int
    fingerprint: str
    columns: list[str]
    window: dict[str, str | None]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe_source(source: SourceSpec) -> str:
    """The source as error messages name it: ``file '<path>'`` or ``query '<first 200 characters>'``."""
    if source.sql is not None:
        return f"query {short_query(source.sql)!r}"
    return f"file {source.path!r}"


def short_query(query: str) -> str:
    """A query on one line, cut after ``QUERY_CHARS`` characters."""
    text = " ".join(query.split())
    return text if len(text) <= QUERY_CHARS else text[:QUERY_CHARS] + "..."


@contextmanager
def sql_errors(query: str) -> Iterator[None]:
    """Turn the errors of a wrong query into ``BadInputError``; other errors (a lost connection) pass.

    A query is wrong when the database says so: a SQLAlchemy ``ProgrammingError``, PostgreSQL's
    SQLSTATE 42P01 (undefined table), 42703 (undefined column) or 42601 (syntax error), an
    ``OperationalError`` saying "no such table", "no such column" or "syntax error" (SQLite), or
    a statement SQLAlchemy refused before sending it (a bind parameter without a value).

    Args:
        query: The query, named in the message (its first 200 characters).

    Raises:
        BadInputError: Naming the query and the database's message.
    """
    from sqlalchemy import exc as sa_exc

    try:
        yield
    except sa_exc.StatementError as exc:
        if not _query_is_wrong(exc, sa_exc):
            raise
        message = " ".join(str(getattr(exc, "orig", None) or exc).split())
        raise BadInputError(f"query {short_query(query)!r} failed: {message}") from exc


def _query_is_wrong(exc: Any, sa_exc: Any) -> bool:
    if not isinstance(exc, sa_exc.DBAPIError):
        return True  # refused by SQLAlchemy before reaching the database
    orig = exc.orig
    if getattr(orig, "pgcode", None) in _QUERY_SQLSTATES or getattr(orig, "sqlstate", None) in _QUERY_SQLSTATES:
        return True
    if isinstance(exc, sa_exc.ProgrammingError):
        return True
    return isinstance(exc, sa_exc.OperationalError) and any(part in str(orig).lower() for part in _QUERY_MESSAGES)


def window_params(query: str, window: Window, source: SourceSpec) -> dict[str, Any]:
    """The bind parameters ``:window_start`` / ``:window_end`` that ``query`` uses.

    Without ``source.time_unit`` they are naive UTC datetimes. With it they are in the time column's
    unit, so ``time >= :window_start AND time < :window_end`` keeps the rows that ``filter_window``
    keeps: a year for ``year`` (the first year whose 1 January is not before the bound), seconds or
    milliseconds since 1970 for ``s`` and ``ms`` (an int when whole). An unset bound is None.

    Args:
        query: The SQL text; only the parameters it names are returned.
        window: The data window.
        source: The spec's source (its ``time_unit``).

    Returns:
        The parameters by name.
    """
    bounds = {"window_start": window.start, "window_end": window.end}
    return {name: _bound(value, source.time_unit) for name, value in bounds.items() if f":{name}" in query}


def _bound(moment: datetime | None, unit: str | None) -> Any:
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    naive = moment.replace(tzinfo=None)
    if unit is None:
        return naive
    if unit == "year":
        return moment.year if naive == datetime(moment.year, 1, 1) else moment.year + 1
    micros = (naive.replace(tzinfo=timezone.utc) - _EPOCH) // timedelta(microseconds=1)
    per_unit = 1_000_000 // _PER_SECOND[unit]
    whole, rest = divmod(micros, per_unit)
    return whole if rest == 0 else micros / per_unit


def filter_window(frame: pd.DataFrame, source: SourceSpec, window: Window) -> pd.DataFrame:
    """Keep the rows whose time (``source.time_column``, read by ``to_times``) lies in the window.

    Args:
        frame: Rows of the source.
        source: The spec's source; its ``time_column`` must be set and in ``frame``.
        window: The data window, ``start <= time < end``; an unset bound is not checked.

    Returns:
        The rows inside the window (rows without a time are dropped).

    Raises:
        DataError: The time column is missing or holds values that are not times.
    """
    column = source.time_column
    if column is None:
        return frame
    if column not in frame.columns:
        raise DataError(
            f"{describe_source(source)}: time column {column!r} is missing from the source "
            f"(columns: {[str(c) for c in frame.columns]})"
        )
    times = to_times(frame[column], source)
    keep = pd.Series(True, index=frame.index)
    if window.start is not None:
        keep &= times >= pd.Timestamp(window.start)
    if window.end is not None:
        keep &= times < pd.Timestamp(window.end)
    return frame.loc[keep]


def to_times(values: pd.Series, source: SourceSpec) -> pd.Series:
    """The time column as timezone-aware UTC times, with the same index.

    How the values are read, by the spec's source:

    * ``time_unit`` ``year``: an integer year is 1 January of that year, 00:00 UTC; ``s`` / ``ms``:
      seconds / milliseconds since 1970-01-01 UTC.
    * ``time_format``: text parsed with exactly that strftime format (whole numbers such as
      20110401 are read as their digits).
    * neither: text in ISO 8601, else as pandas parses it by default (pandas reads ``01/04/2011`` as
      4 January: give a ``time_format`` for day-first dates). Numbers are refused: their unit is
      never guessed.
    * a date-time column is kept as it is, naive times being UTC (with a ``time_unit``: an error).

    Missing values become ``NaT``.

    Args:
        values: The time column.
        source: The spec's source (its ``time_column``, ``time_format`` and ``time_unit``).

    Returns:
        A ``datetime64[..., UTC]`` series.

    Raises:
        DataError: Naming the file or query, the column, the rule and up to 3 offending values.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(object)
    where = f"{describe_source(source)}: time column {source.time_column or values.name!r}"
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        if source.time_unit is not None:
            raise DataError(
                f"{where} holds date-times (dtype {values.dtype}), but source.time_unit {source.time_unit!r} "
                "says it holds integers: remove source.time_unit from the spec"
            )
        return _as_utc(values)
    if not values.notna().any():
        return pd.Series(pd.NaT, index=values.index, name=values.name, dtype="datetime64[ns, UTC]")
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind == "boolean":
        raise DataError(f"{where} holds true/false values, not times (e.g. {_examples(values, values.notna())})")
    if source.time_unit is not None:
        return _from_unit(values, source.time_unit, where, kind)
    if source.time_format is not None:
        return _from_format(values, source.time_format, where, kind)
    if kind in _NUMBER_KINDS:
        whole = _whole(pd.to_numeric(values, errors="coerce"))
        noun = "integers" if whole[values.notna()].all() else "numbers"
        raise DataError(
            f"{where} holds {noun} (e.g. {_examples(values, values.notna())}), and their unit is not guessed: "
            f"set source.time_unit to {', '.join(TIME_UNITS[:-1])} or {TIME_UNITS[-1]} in the spec "
            "(a calendar year, or seconds or milliseconds since 1970)"
        )
    return _from_text(values, where, kind)


def _as_utc(times: pd.Series) -> pd.Series:
    if getattr(times.dt, "tz", None) is None:
        return times.dt.tz_localize("UTC")
    return times.dt.tz_convert("UTC")


def _whole(numbers: pd.Series) -> pd.Series:
    """Which numbers are whole (False for missing ones)."""
    return numbers.notna() & (numbers.astype(float) % 1 == 0)


def _examples(values: pd.Series, offending: pd.Series) -> str:
    """Up to ``EXAMPLES`` distinct offending values, as Python literals."""
    shown = values[offending].drop_duplicates().head(EXAMPLES).tolist()
    return ", ".join(repr(_plain(value)) for value in shown)


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds, so it prints as ``2011``, not ``np.int64(2011)``."""
    return value.item() if hasattr(value, "item") and not isinstance(value, str | bytes) else value


def _raise_offending(where: str, values: pd.Series, offending: pd.Series, rule: str, hint: str = "") -> None:
    """Raise ``DataError`` when any value is ``offending``: ``<where>: values that <rule> (<n> rows): <examples>``."""
    if offending.any():
        count = int(offending.sum())
        raise DataError(
            f"{where}: values that {rule} ({count} row{'s' if count > 1 else ''}): {_examples(values, offending)}"
            + (f"; {hint}" if hint else "")
        )


def _from_unit(values: pd.Series, unit: str, where: str, kind: str) -> pd.Series:
    present = values.notna()
    if kind in _NUMBER_KINDS:
        numbers = pd.to_numeric(values, errors="coerce").astype(float)
    else:  # digits as text (say, from a text column of a database) are fine; other text is not
        numbers = values.map(_number, na_action="ignore").astype(float)
    rule, hint = f"are not {_UNIT_NAMES[unit]}, as source.time_unit {unit!r} says", ""
    if unit == "year":
        years = numbers.where(_whole(numbers) & numbers.between(1678, 2262))
        text = years.astype("Int64").astype("string")
        times = pd.to_datetime(text, format="%Y", utc=True, errors="coerce")
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            times = pd.to_datetime(numbers, unit="s" if unit == "s" else "ms", utc=True, errors="coerce")
        if unit == "s" and (numbers.abs() > 1e11).any():
            hint = "values this large look like milliseconds: source.time_unit 'ms'"
    times.index, times.name = values.index, values.name
    _raise_offending(where, values, present & times.isna(), rule, hint)
    return times


def _number(value: Any) -> float:
    """A number, or the digits of a text such as '2011', as a float; NaN for anything else."""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return float(value)
    return float("nan")


def _from_format(values: pd.Series, time_format: str, where: str, kind: str) -> pd.Series:
    if kind in _DATETIME_KINDS:
        return _parse_default(values, where)
    text = values if kind == "string" else values.map(_as_text, na_action="ignore")
    times = pd.to_datetime(text, format=time_format, utc=True, errors="coerce")
    _raise_offending(where, values, values.notna() & times.isna(), f"do not match source.time_format {time_format!r}")
    return times


def _as_text(value: Any) -> Any:
    """A whole number as its digits (20110401 for '%Y%m%d'), anything else as its text."""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool) and float(value) % 1 == 0:
        return str(int(value))
    return value if isinstance(value, str) else str(value)


def _from_text(values: pd.Series, where: str, kind: str) -> pd.Series:
    if kind in _DATETIME_KINDS:
        return _parse_default(values, where)
    is_text = values.notna() if kind == "string" else values.map(lambda value: isinstance(value, str)).astype(bool)
    text = values.where(is_text)
    times = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    retry = is_text & times.isna()
    if retry.any():  # not ISO 8601: pandas' default parse, whose format is inferred from the first value
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            times[retry] = pd.to_datetime(text[retry], utc=True, errors="coerce")
    rule = "are not times in ISO 8601 or another format pandas reads"
    hint = "for another format set source.time_format (a strftime format such as '%d/%m/%Y') in the spec"
    _raise_offending(where, values, values.notna() & times.isna(), rule, hint)
    return times


def _parse_default(values: pd.Series, where: str) -> pd.Series:
    """Date-time objects (or a mix with text): pandas' own parse."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pd.to_datetime(values, utc=True)
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(f"{where} holds values that are not times: {exc}") from None


def ingest(source: Any, window: Window, out_uri: str, out_options: dict[str, Any] | None = None) -> IngestResult:
    """Read the window from ``source`` (a ``core.sources.Source``) and write it to ``out_uri`` as Parquet.

    ``out_options`` are the fsspec options of the artifact root.
    """
    frame = source.read(window)
    if frame.empty:
        where = source.spec.path or "the SQL query"
        raise EmptyWindowError(f"no rows in the data window {window} of {where}")
    storage.write_parquet(frame, out_uri, out_options)
    return IngestResult(
        uri=out_uri,
        rows=len(frame),
        fingerprint=storage.fingerprint(frame),
        columns=[str(c) for c in frame.columns],
        window=window.as_dict(),
    )
