"""Reading and writing data and reports under the artifact root (a local folder or ``s3://``)."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from airflow_mlc.errors import DataError

#: What pandas raises for a file that is not a CSV it can read.
CSV_ERRORS = (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError)


@dataclass(frozen=True)
class Storage:
    """An artifact root plus the fsspec options (credentials, endpoint) needed to reach it."""

    root: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def is_remote(self) -> bool:
        return is_remote(self.root)

    def uri(self, *parts: str) -> str:
        """The URI of ``parts`` below the root; each part is made safe for a path."""
        return join_uri(self.root, *(safe_part(p) for p in parts))


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def join_uri(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])


def safe_part(part: str) -> str:
    """A run id such as ``manual__2011-04-01T00:00:00+00:00`` made safe as one path segment."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", part).strip("_") or "_"


def _local_path(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


def options_for(uri: str, options: dict[str, Any]) -> dict[str, Any] | None:
    """Fsspec options apply to remote URIs only; pandas rejects them for local paths."""
    return options if is_remote(uri) and options else None


def write_parquet(frame: pd.DataFrame, uri: str, options: dict[str, Any] | None = None) -> str:
    """Write ``frame`` to ``uri`` all at once: a reader never sees a half-written file."""
    if is_remote(uri):
        frame.to_parquet(uri, index=False, storage_options=options_for(uri, options or {}))
        return uri
    _atomic_local_write(_local_path(uri), lambda tmp: frame.to_parquet(tmp, index=False))
    return uri


def write_table(table: Any, uri: str, options: dict[str, Any] | None = None) -> str:
    """Write an Arrow table to ``uri`` as Parquet all at once: a reader never sees a half-written file."""
    import fsspec
    import pyarrow.parquet as pq

    if is_remote(uri):
        with fsspec.open(uri, "wb", **(options or {})) as handle:
            pq.write_table(table, handle)
        return uri
    _atomic_local_write(_local_path(uri), lambda tmp: pq.write_table(table, tmp))
    return uri


def read_table(uri: str, options: dict[str, Any] | None = None) -> Any:
    """A Parquet file as an Arrow table (with its schema's metadata)."""
    import fsspec
    import pyarrow.parquet as pq

    with fsspec.open(uri, "rb", **(options_for(uri, options or {}) or {})) as handle:
        return pq.read_table(handle)


class ParquetColumns:
    """A Parquet file read a column at a time (column projection): only the column asked for is in memory.

    Use it as a context manager; errors as ``read_file`` raises them.
    """

    def __init__(self, uri: str, options: dict[str, Any] | None = None) -> None:
        self.uri = uri
        self.options = options
        self._stack = ExitStack()

    def __enter__(self) -> ParquetColumns:
        import fsspec
        import pyarrow as pa
        import pyarrow.parquet as pq

        require_local_file(self.uri)
        handle = self._stack.enter_context(
            fsspec.open(self.uri, "rb", **(options_for(self.uri, self.options or {}) or {}))
        )
        try:
            self._file = self._stack.enter_context(pq.ParquetFile(handle, pre_buffer=False))
        except pa.ArrowInvalid as exc:
            self._stack.close()
            raise DataError(f"file {self.uri!r}: not a readable Parquet file: {_first_line(exc)}") from None
        check_unique_columns(self.names, f"file {self.uri!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @property
    def rows(self) -> int:
        return int(self._file.metadata.num_rows)

    @property
    def names(self) -> list[str]:
        return list(self._file.schema_arrow.names)

    def column(self, name: str) -> Any:
        """The column ``name`` as an Arrow ChunkedArray."""
        return self._file.read(columns=[name]).column(0)

    def batches(self, names: list[str], rows: int) -> Iterator[pd.DataFrame]:
        """The columns ``names`` by consecutive batches of at most ``rows`` rows (one empty batch for no rows)."""
        empty = True
        for batch in self._file.iter_batches(batch_size=rows, columns=names):
            empty = False
            yield batch.to_pandas()
        if empty:
            yield self._file.schema_arrow.empty_table().select(names).to_pandas()


def read_parquet(uri: str, options: dict[str, Any] | None = None) -> pd.DataFrame:
    return pd.read_parquet(uri, storage_options=options_for(uri, options or {}))


def read_parquet_if_there(uri: str | None, options: dict[str, Any] | None = None) -> pd.DataFrame | None:
    """A Parquet file that may have been removed since it was recorded (a champion's data), or None."""
    if not uri:
        return None
    try:
        return read_parquet(uri, options)
    except (FileNotFoundError, PermissionError):
        return None


def read_file(uri: str, file_format: str, options: dict[str, Any] | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet source file.

    Args:
        uri: A local path or a URI (``s3://``, ``file://``).
        file_format: ``csv`` or ``parquet``.
        options: fsspec options (credentials, endpoint) for a remote URI.

    Returns:
        The file's rows.

    Raises:
        DataError: A local file that does not exist, a file that is not a readable CSV or Parquet
            file, or duplicate column names; the message names the file.
    """
    require_local_file(uri)
    storage_options = options_for(uri, options or {})
    if file_format == "csv":
        with csv_errors(uri):
            frame = pd.read_csv(uri, storage_options=storage_options)
        check_csv_columns(frame.columns, uri, options)
        return frame
    import pyarrow as pa

    if is_folder(uri, options):  # read as its chunks are, so both hold the same columns and types
        with _parquet_folder(uri, options) as dataset:
            return dataset.to_table().to_pandas()
    try:
        frame = pd.read_parquet(uri, storage_options=storage_options)
    except pa.ArrowInvalid as exc:
        check_unique_columns(parquet_columns(uri, options), f"file {uri!r}")
        raise DataError(f"file {uri!r}: not a readable Parquet file: {_first_line(exc)}") from None
    check_unique_columns(frame.columns, f"file {uri!r}")
    return frame


def iter_csv(uri: str, chunk_rows: int, options: dict[str, Any] | None = None) -> Iterator[pd.DataFrame]:
    """The rows of a CSV file, ``chunk_rows`` at a time; errors as ``read_file`` raises them."""
    require_local_file(uri)
    with csv_errors(uri):
        with pd.read_csv(uri, chunksize=chunk_rows, storage_options=options_for(uri, options or {})) as reader:
            for number, chunk in enumerate(reader):
                if number == 0:
                    check_csv_columns(chunk.columns, uri, options)
                yield chunk


def iter_parquet(uri: str, chunk_rows: int, options: dict[str, Any] | None = None) -> Iterator[pd.DataFrame]:
    """The rows of a Parquet file, or of a folder of them, by row batches of ``chunk_rows``.

    A folder is read as ``read_file`` reads it (a pyarrow dataset: its files in order, ``key=value``
    folders as columns). Errors are those ``read_file`` raises.
    """
    import fsspec
    import pyarrow as pa
    import pyarrow.parquet as pq

    require_local_file(uri)
    if is_folder(uri, options):
        yield from _iter_parquet_folder(uri, chunk_rows, options)
        return
    with fsspec.open(uri, "rb", **(options_for(uri, options or {}) or {})) as handle:
        try:
            parquet = pq.ParquetFile(handle, pre_buffer=False)  # pre-buffering keeps every row group read
        except pa.ArrowInvalid as exc:
            raise DataError(f"file {uri!r}: not a readable Parquet file: {_first_line(exc)}") from None
        with parquet:
            check_unique_columns(parquet.schema_arrow.names, f"file {uri!r}")
            for batch in parquet.iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()


def is_folder(uri: str, options: dict[str, Any] | None = None) -> bool:
    """Whether ``uri`` is a folder (a prefix holding objects, on S3)."""
    if not is_remote(uri):
        return _local_path(uri).is_dir()
    import fsspec

    filesystem, path = fsspec.core.url_to_fs(uri, **(options_for(uri, options or {}) or {}))
    return bool(filesystem.isdir(path))


@contextmanager
def _parquet_folder(uri: str, options: dict[str, Any] | None) -> Iterator[Any]:
    """A folder of Parquet files as a pyarrow dataset (``key=value`` sub-folders become columns)."""
    import fsspec
    import pyarrow as pa
    import pyarrow.dataset as ds

    filesystem, path = fsspec.core.url_to_fs(uri, **(options_for(uri, options or {}) or {}))
    try:
        dataset = ds.dataset(path, format="parquet", partitioning="hive", filesystem=filesystem)
        check_unique_columns(dataset.schema.names, f"folder {uri!r}")
        yield dataset
    except pa.ArrowInvalid as exc:
        raise DataError(f"folder {uri!r}: not a readable Parquet dataset: {_first_line(exc)}") from None


def _iter_parquet_folder(uri: str, chunk_rows: int, options: dict[str, Any] | None) -> Iterator[pd.DataFrame]:
    with _parquet_folder(uri, options) as dataset:
        for batch in dataset.to_batches(batch_size=chunk_rows):
            yield batch.to_pandas()


def require_local_file(uri: str) -> None:
    """Raise ``DataError`` when ``uri`` is a local path that does not exist (a remote one is not checked)."""
    if not is_remote(uri) and not _local_path(uri).exists():
        raise DataError(f"file {uri!r} does not exist")


@contextmanager
def csv_errors(uri: str) -> Iterator[None]:
    """Turn pandas' errors for an unreadable CSV file into a ``DataError`` naming the file."""
    try:
        yield
    except pd.errors.EmptyDataError:
        raise DataError(f"file {uri!r}: not a readable CSV file: it is empty (no header row)") from None
    except UnicodeDecodeError as exc:
        raise DataError(
            f"file {uri!r}: not a readable CSV file: byte {exc.object[exc.start : exc.start + 1]!r} at "
            f"position {exc.start} is not {exc.encoding} text (is it a CSV file?)"
        ) from None
    except pd.errors.ParserError as exc:
        raise DataError(f"file {uri!r}: not a readable CSV file: {_first_line(exc)}") from None


def check_csv_columns(columns: Iterable[Any], uri: str, options: dict[str, Any] | None = None) -> None:
    """Raise ``DataError`` when the header of the CSV file ``uri`` repeats a column name.

    pandas renames a repeated ``age`` to ``age.1``, so when a column is so named beside ``age``,
    the header row is read again as it is written in the file.
    """
    names = {str(column) for column in columns}
    if not any((found := re.fullmatch(r"(.*)\.\d+", name)) and found.group(1) in names for name in names):
        return
    with csv_errors(uri):
        header = pd.read_csv(
            uri,
            header=None,
            nrows=1,
            dtype=str,
            keep_default_na=False,
            storage_options=options_for(uri, options or {}),
        )
    check_unique_columns(header.iloc[0].tolist(), f"file {uri!r}")


def check_unique_columns(columns: Iterable[Any] | None, where: str) -> None:
    """Raise ``DataError`` naming ``where`` and the repeated names when ``columns`` repeats a name."""
    names = [str(column) for column in (columns if columns is not None else [])]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataError(
            f"{where}: duplicate column names {repeated}: every column needs its own name (columns: {names})"
        )


def parquet_columns(uri: str, options: dict[str, Any] | None = None) -> list[str] | None:
    """The column names in a Parquet file's schema, or None when it cannot be opened as one."""
    import fsspec
    import pyarrow.parquet as pq

    try:
        with fsspec.open(uri, "rb", **(options_for(uri, options or {}) or {})) as handle:
            return list(pq.ParquetFile(handle).schema_arrow.names)
    except Exception:  # only a diagnosis: the caller reports its own error
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def write_text(text: str, uri: str, options: dict[str, Any] | None = None) -> str:
    """Write a text file (a report) all at once."""
    if is_remote(uri):
        import fsspec

        with fsspec.open(uri, "w", **(options or {})) as handle:
            handle.write(text)
        return uri
    _atomic_local_write(_local_path(uri), lambda tmp: Path(tmp).write_text(text))
    return uri


def read_text(uri: str, options: dict[str, Any] | None = None) -> str:
    """A text file's content; ``FileNotFoundError`` when there is none."""
    if not is_remote(uri):
        return _local_path(uri).read_text()
    import fsspec

    with fsspec.open(uri, "r", **(options or {})) as handle:
        return str(handle.read())


def signature(uri: str, options: dict[str, Any] | None = None) -> str:
    """What tells one version of a file from the next: its size and its modification time (or S3 ETag)."""
    import fsspec

    filesystem, path = fsspec.core.url_to_fs(uri, **(options_for(uri, options or {}) or {}))
    info = filesystem.info(path)
    changed = next((info[k] for k in ("ETag", "etag", "mtime", "LastModified", "last_modified") if k in info), "")
    return f"{info.get('size')}:{changed}"


def remove(uri: str, options: dict[str, Any] | None = None) -> None:
    """Delete the file at ``uri`` if it exists."""
    if not is_remote(uri):
        _local_path(uri).unlink(missing_ok=True)
        return
    import fsspec

    filesystem, path = fsspec.core.url_to_fs(uri, **(options_for(uri, options or {}) or {}))
    if filesystem.exists(path):
        filesystem.rm(path)


def exists(uri: str, options: dict[str, Any] | None = None) -> bool:
    if not is_remote(uri):
        return _local_path(uri).exists()
    import fsspec

    filesystem, path = fsspec.core.url_to_fs(uri, **(options or {}))
    return bool(filesystem.exists(path))


def _atomic_local_write(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of a frame (values, column names and order), stable across runs."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]
