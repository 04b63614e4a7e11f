"""Reading and writing data and reports under the artifact root (a local folder or ``s3://``)."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd


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


def read_parquet(uri: str, options: dict[str, Any] | None = None) -> pd.DataFrame:
    return pd.read_parquet(uri, storage_options=options_for(uri, options or {}))


def read_file(uri: str, file_format: str, options: dict[str, Any] | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet source file."""
    storage_options = options_for(uri, options or {})
    if file_format == "csv":
        return pd.read_csv(uri, storage_options=storage_options)
    return pd.read_parquet(uri, storage_options=storage_options)


def write_text(text: str, uri: str, options: dict[str, Any] | None = None) -> str:
    """Write a text file (a report) all at once."""
    if is_remote(uri):
        import fsspec

        with fsspec.open(uri, "w", **(options or {})) as handle:
            handle.write(text)
        return uri
    _atomic_local_write(_local_path(uri), lambda tmp: Path(tmp).write_text(text))
    return uri


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
