"""Ingest: read the source for a data window and write a Parquet snapshot."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from airflow_mlc.core import storage
from airflow_mlc.core.window import Window
from airflow_mlc.errors import DataError, EmptyWindowError
from airflow_mlc.spec import SourceSpec


@dataclass(frozen=True)
class IngestResult:
    uri: str
    rows: int
    fingerprint: str
    columns: list[str]
    window: dict[str, str | None]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_source(
    source: SourceSpec, window: Window, options: dict[str, Any] | None = None, engine: Any = None
) -> pd.DataFrame:
    """Read the rows of ``source`` inside ``window``.

    A SQL query gets the window as the bind parameters ``:window_start`` and ``:window_end``. Rows of
    any source are then kept only inside the window on ``time_column``, when the spec names one (it
    must be in the result). ``engine`` is a SQLAlchemy engine or URL for a SQL source.
    """
    if source.sql is not None:
        frame = _read_sql(source.sql, engine or source.url, window)
    else:
        frame = storage.read_file(str(source.path), source.file_format, options)
    if source.time_column:
        frame = filter_window(frame, source.time_column, window)
    return frame.reset_index(drop=True)


def _read_sql(query: str, engine: Any, window: Window) -> pd.DataFrame:
    import sqlalchemy

    if isinstance(engine, str):
        engine = sqlalchemy.create_engine(engine)
    statement = sqlalchemy.text(query)
    with engine.connect() as connection:
        return pd.read_sql_query(statement, connection, params=window_params(query, window))


def window_params(query: str, window: Window) -> dict[str, Any]:
    """The bind parameters ``:window_start`` / ``:window_end`` that ``query`` uses, as naive UTC datetimes."""
    bounds = {"window_start": window.start, "window_end": window.end}
    return {
        name: value.replace(tzinfo=None) if value is not None else None
        for name, value in bounds.items()
        if f":{name}" in query
    }


def filter_window(frame: pd.DataFrame, time_column: str, window: Window) -> pd.DataFrame:
    """Keep the rows whose ``time_column`` lies in the window; naive times are taken as UTC."""
    if time_column not in frame.columns:
        raise DataError(f"time column {time_column!r} is missing from the source (columns: {list(frame.columns)})")
    try:
        times = pd.to_datetime(frame[time_column], utc=True)
    except (ValueError, TypeError) as exc:
        raise DataError(f"time column {time_column!r} holds values that are not times: {exc}") from None
    keep = pd.Series(True, index=frame.index)
    if window.start is not None:
        keep &= times >= pd.Timestamp(window.start)
    if window.end is not None:
        keep &= times < pd.Timestamp(window.end)
    return frame.loc[keep]


def ingest(
    source: SourceSpec,
    window: Window,
    out_uri: str,
    out_options: dict[str, Any] | None = None,
    source_options: dict[str, Any] | None = None,
    engine: Any = None,
) -> IngestResult:
    """Read the window from the source and write it to ``out_uri`` as Parquet.

    ``source_options`` reach an ``s3://`` source, ``out_options`` the artifact root.
    """
    frame = read_source(source, window, source_options, engine)
    if frame.empty:
        where = source.path or "the SQL query"
        raise EmptyWindowError(f"no rows in the data window {window} of {where}")
    storage.write_parquet(frame, out_uri, out_options)
    return IngestResult(
        uri=out_uri,
        rows=len(frame),
        fingerprint=storage.fingerprint(frame),
        columns=[str(c) for c in frame.columns],
        window=window.as_dict(),
    )
