"""Data sources: each kind of source reads a window, reads it in chunks, and counts the rows in it.

Every reader of a source goes through here: the ingest task (:meth:`Source.read`), batch inference
(:meth:`Source.chunks`) and the data sensor (:meth:`Source.count`). A kind of source is a subclass of
:class:`Source` and one line in :func:`open_source`:

- :class:`FileSource`: a CSV file, a Parquet file or a folder of Parquet files (partitioned or not),
  local or remote (``s3://``, with fsspec options);
- :class:`SqlSource`: a query through any SQLAlchemy engine (the Airflow face builds it from any SQL
  connection's ``DbApiHook``), the window given as the bind parameters ``:window_start`` and
  ``:window_end``; read in chunks through a server-side cursor where the driver has one.

Whatever the kind, rows are then kept inside the window on ``source.time_column`` (``filter_window``),
so every kind agrees on which rows a window holds.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

import pandas as pd

from airflow_mlc.core import storage
from airflow_mlc.core.ingest import describe_source, filter_window, sql_errors, window_params
from airflow_mlc.core.window import Window
from airflow_mlc.errors import BadInputError, DataError
from airflow_mlc.spec import SourceSpec

#: Rows read at a time when a file's rows are counted, and time values fetched at a time when a SQL
#: source's times are counted here (text in a ``time_format``).
COUNT_ROWS = 50_000


class Source:
    """A source of rows for a data window. Use it as a context manager: leaving it releases its connections."""

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Release what the source holds (a SQL engine it created)."""

    def describe(self) -> str:
        """The source as error messages name it."""
        return describe_source(self.spec)

    def read(self, window: Window) -> pd.DataFrame:
        """The rows inside ``window``, with a fresh ``RangeIndex``.

        Raises:
            DataError: The data is missing or malformed, has duplicate column names, or its time column is
                missing or holds no times.
            BadInputError: A query is wrong (no such table or column, a syntax error).
        """
        frame = self._read_all(window)
        if self.spec.time_column:
            frame = filter_window(frame, self.spec, window)
        return frame.reset_index(drop=True)

    def chunks(self, window: Window, chunk_rows: int) -> Generator[pd.DataFrame, None, None]:
        """The rows inside ``window``, at most ``chunk_rows`` at a time; chunks the filter empties are skipped.

        Errors are those of :meth:`read`, raised when the chunk holding the problem is read.
        """
        if chunk_rows < 1:
            raise BadInputError(f"chunk_rows must be at least 1, not {chunk_rows}")
        for chunk in self._read_chunks(window, chunk_rows):
            if self.spec.time_column:
                chunk = filter_window(chunk, self.spec, window)
            if len(chunk):
                chunk.index = pd.RangeIndex(len(chunk))  # our own frame: no copy as reset_index would make
                yield chunk

    def count(self, window: Window) -> int:
        """The number of rows inside ``window`` (0 while the data does not exist yet)."""
        return sum(len(chunk) for chunk in self.chunks(window, COUNT_ROWS))

    def _read_all(self, window: Window) -> pd.DataFrame:
        raise NotImplementedError

    def _read_chunks(self, window: Window, chunk_rows: int) -> Iterator[pd.DataFrame]:
        raise NotImplementedError


class FileSource(Source):
    """A CSV file, a Parquet file or a folder of Parquet files, local or remote (``options``: fsspec's)."""

    def __init__(self, spec: SourceSpec, options: dict[str, Any] | None = None) -> None:
        super().__init__(spec)
        self.uri, self.options = str(spec.path), options or {}

    def _read_all(self, window: Window) -> pd.DataFrame:
        self._check_kind()
        return storage.read_file(self.uri, self.spec.file_format, self.options)

    def _read_chunks(self, window: Window, chunk_rows: int) -> Iterator[pd.DataFrame]:
        self._check_kind()
        if self.spec.file_format == "csv":
            return storage.iter_csv(self.uri, chunk_rows, self.options)
        return storage.iter_parquet(self.uri, chunk_rows, self.options)

    def _check_kind(self) -> None:
        if self.spec.file_format == "csv" and storage.is_folder(self.uri, self.options):
            raise DataError(f"file {self.uri!r} is a folder: a folder source must be Parquet (format: parquet)")

    def count(self, window: Window) -> int:
        if not storage.exists(self.uri, self.options):
            return 0  # the data sensor waits for it
        return super().count(window)


class SqlSource(Source):
    """A query through a SQLAlchemy engine (or URL; default: the spec's ``url``).

    An engine built here from a URL is disposed of on :meth:`close`; a given one only with ``owns_engine``.
    """

    def __init__(self, spec: SourceSpec, engine: Any = None, owns_engine: bool = False) -> None:
        import sqlalchemy

        super().__init__(spec)
        self.query = str(spec.sql)
        engine = engine if engine is not None else spec.url
        self.owns_engine = owns_engine or isinstance(engine, str)
        self.engine = sqlalchemy.create_engine(engine) if isinstance(engine, str) else engine

    def close(self) -> None:
        if self.owns_engine:  # a sensor counts again and again: no pool left behind each time
            self.engine.dispose()

    def _read_all(self, window: Window) -> pd.DataFrame:
        import sqlalchemy

        params = window_params(self.query, window, self.spec)
        with sql_errors(self.query), self.engine.connect() as connection:
            frame = pd.read_sql_query(sqlalchemy.text(self.query), connection, params=params)
        storage.check_unique_columns(frame.columns, self.describe())
        return frame

    def _read_chunks(self, window: Window, chunk_rows: int) -> Iterator[pd.DataFrame]:
        import sqlalchemy

        params = window_params(self.query, window, self.spec)
        # stream_results: a server-side cursor where the driver has one, so the result is not fetched whole
        with sql_errors(self.query), self.engine.connect().execution_options(stream_results=True) as connection:
            for number, chunk in enumerate(
                pd.read_sql_query(sqlalchemy.text(self.query), connection, params=params, chunksize=chunk_rows)
            ):
                if number == 0:
                    storage.check_unique_columns(chunk.columns, self.describe())
                yield chunk

    def count(self, window: Window) -> int:
        """Counted by the database (see :func:`count_window_rows`)."""
        source, query = self.spec, self.query.strip().rstrip(";").strip()
        with sql_errors(self.query), self.engine.connect() as connection:
            if not source.time_column:
                return self._scalar(connection, f"SELECT COUNT(*) FROM ({query}) AS q", window)
            column = f"q.{self.engine.dialect.identifier_preparer.quote(source.time_column)}"
            if source.time_format is not None:  # text times the database cannot order: counted here
                return self._count_fetched(connection, query, column, window)
            self._check_sample(connection, query, column, window)
            conditions = []
            if window.start is not None:
                conditions.append(f"{column} >= :window_start")
            if window.end is not None:
                conditions.append(f"{column} < :window_end")
            text = f"SELECT COUNT(*) FROM ({query}) AS q"
            if conditions:
                text += " WHERE " + " AND ".join(conditions)
            return self._scalar(connection, text, window)

    def _scalar(self, connection: Any, text: str, window: Window) -> int:
        import sqlalchemy

        # Bound as a read binds them; a query may use either bound itself, even an unset one (None).
        return int(connection.execute(sqlalchemy.text(text), window_params(text, window, self.spec)).scalar_one())

    @staticmethod
    def _time_column_select(query: str, column: str) -> Any:
        import sqlalchemy

        return sqlalchemy.select(sqlalchemy.literal_column(column)).select_from(sqlalchemy.text(f"({query}) AS q"))

    def _check_sample(self, connection: Any, query: str, column: str, window: Window) -> None:
        """Read one value of the time column through ``to_times``: a column without times fails here."""
        import sqlalchemy

        statement = self._time_column_select(query, column)
        statement = statement.where(sqlalchemy.literal_column(column).is_not(None)).limit(1)
        rows = connection.execute(statement, window_params(query, window, self.spec)).all()
        self._times_in_window(rows, window)

    def _count_fetched(self, connection: Any, query: str, column: str, window: Window) -> int:
        """Fetch the time column a batch at a time and count the times inside the window."""
        result = connection.execution_options(stream_results=True).execute(
            self._time_column_select(query, column), window_params(query, window, self.spec)
        )
        return sum(self._times_in_window(rows, window) for rows in result.partitions(COUNT_ROWS))

    def _times_in_window(self, rows: Any, window: Window) -> int:
        values = pd.Series([row[0] for row in rows], dtype=object).infer_objects()
        return len(filter_window(pd.DataFrame({str(self.spec.time_column): values}), self.spec, window))


def open_source(
    spec: SourceSpec, options: dict[str, Any] | None = None, engine: Any = None, owns_engine: bool = False
) -> Source:
    """The source the spec describes.

    Args:
        spec: The spec's source.
        options: fsspec options (credentials, endpoint) for a remote file.
        engine: A SQLAlchemy engine or URL for a SQL source; default: ``spec.url``. One built from a URL
            is disposed of when the source is closed.
        owns_engine: Dispose of the given engine too when the source is closed.
    """
    if spec.sql is not None:
        return SqlSource(spec, engine, owns_engine)
    return FileSource(spec, options)


def read_source(
    spec: SourceSpec, window: Window, options: dict[str, Any] | None = None, engine: Any = None
) -> pd.DataFrame:
    """The rows of the source inside ``window`` (see :meth:`Source.read`)."""
    with open_source(spec, options, engine) as source:
        return source.read(window)


def read_chunks(
    spec: SourceSpec, window: Window, chunk_rows: int, options: dict[str, Any] | None = None, engine: Any = None
) -> Iterator[pd.DataFrame]:
    """The rows of the source inside ``window``, ``chunk_rows`` at a time (see :meth:`Source.chunks`)."""
    with open_source(spec, options, engine) as source:
        yield from source.chunks(window, chunk_rows)


def count_window_rows(
    spec: SourceSpec, window: Window, options: dict[str, Any] | None = None, engine: Any = None
) -> int:
    """The number of rows of the source inside ``window``; 0 for a file that does not exist yet.

    A SQL source is counted by the database: ``SELECT COUNT(*)`` over the query, kept inside the window
    on ``time_column`` when the spec names one, with the bounds in the column's ``time_unit`` as
    ``core.ingest.window_params`` gives them; the query gets the same bounds as ``:window_start`` and
    ``:window_end``. One value of the time column is first read through ``core.ingest.to_times``, so a
    column that holds no times (or integers without a ``time_unit``) is an error, not a count of 0. Text
    times in a ``time_format`` cannot be compared by the database: then only the time column is fetched,
    and its times are counted here. A file is read in chunks and filtered like ingest reads it.

    Raises:
        DataError: A malformed file, or a time column without times (see ``to_times``).
        BadInputError: The query is wrong (no such table or column, a syntax error).
    """
    with open_source(spec, options, engine) as source:
        return source.count(window)
