"""Batch inference: score a data window chunk by chunk and write the predictions as one Parquet file.

The window is read in chunks of at most ``chunk_rows`` rows and never held whole in memory. Each
scored chunk becomes one row group of a temporary Parquet file that replaces the output only when
every chunk succeeded, and may also stream into a SQL table inside one transaction that first
deletes the interval's earlier rows: re-running an interval replaces its predictions, and a failed
run leaves the previous ones as they were.
"""

from __future__ import annotations

import glob
import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from airflow_mlc.core import storage
from airflow_mlc.errors import DataError, EmptyWindowError

#: The column of the output that holds the model's prediction.
PREDICTION = "prediction"
#: The column that says which role produced a row, and the roles: the version ``champion`` points at, a
#: version pinned by the spec or the run, the challenger serving a canary's share, the challenger in shadow.
ROLE, CHAMPION_ROLE, PINNED_ROLE, CANARY_ROLE, SHADOW = "role", "champion", "pinned", "canary", "shadow"
#: Predictions kept (a uniform sample) to estimate the quantiles of a regression's predictions.
SAMPLE_SIZE = 100_000


#: Receives each scored chunk (``keep_columns`` + ``prediction`` + the extra columns).
Sink = Callable[[pd.DataFrame], None]


@dataclass(frozen=True)
class PredictionStats:
    """How much was scored, how fast, and how the predictions are distributed.

    A regression has ``mean``, ``std`` (population), ``min`` and ``max`` over every prediction, and
    the quantiles ``p05``, ``p50`` and ``p95`` of a uniform sample of at most ``sample_size``
    predictions (exact when the window is no larger). A classification has the count and the share
    of each predicted class.
    """

    task: str
    rows: int
    seconds: float
    rows_per_second: float
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    p05: float | None = None
    p50: float | None = None
    p95: float | None = None
    sample_size: int | None = None
    class_counts: dict[str, int] | None = None
    class_shares: dict[str, float] | None = None
    shadow: dict[str, Any] | None = None
    canary: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The stats that apply to the task (no ``None`` entries)."""
        return {name: value for name, value in asdict(self).items() if value is not None}

    def metrics(self) -> dict[str, float]:
        """The numeric stats as flat MLflow metric names (``prediction_mean``, ``class_share.<label>`` ...)."""
        values: dict[str, float] = {"rows": self.rows, "seconds": self.seconds, "rows_per_second": self.rows_per_second}
        for name in ("mean", "std", "min", "max", "p05", "p50", "p95"):
            value = getattr(self, name)
            if value is not None:
                values[f"prediction_{name}"] = value
        for label, count in (self.class_counts or {}).items():
            values[f"class_count.{_metric_safe(label)}"] = count
        for label, share in (self.class_shares or {}).items():
            values[f"class_share.{_metric_safe(label)}"] = share
        for prefix, found in (("shadow", self.shadow), ("canary", self.canary)):
            for name, value in (found or {}).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    values[f"{prefix}_{name}"] = value
        return values


def _metric_safe(label: str) -> str:
    return re.sub(r"[^\w\-. /]", "_", label)


class _RegressionSummary:
    """Streaming count, mean, variance (Chan et al.), min and max, plus a bounded uniform sample.

    The sample keeps the predictions with the ``size`` smallest random keys seen so far (a bottom-k
    sample): uniform over all predictions whatever the chunking, and seeded, so repeatable.
    """

    def __init__(self, size: int = SAMPLE_SIZE, seed: int = 0) -> None:
        self.count, self.mean, self.m2 = 0, 0.0, 0.0
        self.low, self.high = np.inf, -np.inf
        self.size, self.rng = size, np.random.default_rng(seed)
        self.keys, self.sample = np.empty(0), np.empty(0)

    def add(self, predictions: np.ndarray) -> None:
        values = np.asarray(predictions, dtype=float)
        n, mean = len(values), float(values.mean())
        total = self.count + n
        delta = mean - self.mean
        self.m2 += float(np.square(values - mean).sum()) + delta * delta * self.count * n / total
        self.mean += delta * n / total
        self.count = total
        self.low, self.high = min(self.low, float(values.min())), max(self.high, float(values.max()))
        keys = self.rng.random(n)
        if len(self.keys) == self.size:  # full: only keys below the largest kept one can get in
            below = keys < self.keys.max()
            keys, values = keys[below], values[below]
        keys, values = np.concatenate([self.keys, keys]), np.concatenate([self.sample, values])
        if len(keys) > self.size:
            smallest = np.argpartition(keys, self.size - 1)[: self.size]
            keys, values = keys[smallest], values[smallest]
        self.keys, self.sample = keys, values

    def fields(self) -> dict[str, Any]:
        p05, p50, p95 = (float(q) for q in np.quantile(self.sample, [0.05, 0.5, 0.95]))
        std = float(np.sqrt(self.m2 / self.count))
        return {
            "mean": self.mean,
            "std": std,
            "min": self.low,
            "max": self.high,
            "p05": p05,
            "p50": p50,
            "p95": p95,
            "sample_size": len(self.sample),
        }


class _ClassCounts:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def add(self, predictions: np.ndarray) -> None:
        labels, counts = np.unique(predictions, return_counts=True)
        self.counts.update({str(label): int(count) for label, count in zip(labels, counts, strict=True)})

    def fields(self) -> dict[str, Any]:
        total = sum(self.counts.values())
        ordered = dict(sorted(self.counts.items()))
        return {"class_counts": ordered, "class_shares": {k: v / total for k, v in ordered.items()}}


@dataclass(frozen=True)
class ShadowModel:
    """A challenger scored beside the served model in shadow mode: its predictions go to ``out_uri``, never served."""

    model: Any
    version: str
    out_uri: str


@dataclass(frozen=True)
class CanaryRouting:
    """Canary mode: the rows whose key hashes below ``share`` are served by ``model`` (version ``version``).

    With no model or a share of 0, every row is the served model's.
    """

    model: Any
    version: str | None
    key: list[str]
    share: float
    seed: int


def _routed(
    model: Any,
    served: tuple[str, str],
    canary: CanaryRouting,
    chunk: pd.DataFrame,
    features: list[str],
    keep_columns: list[str],
) -> pd.DataFrame:
    """The chunk's kept columns, ``prediction``, ``model_version`` and ``role``; each row scored by its model."""
    from airflow_mlc.core.rollout import canary_rows

    share = canary.share if canary.model is not None else 0.0
    mask = canary_rows(chunk, canary.key, share, canary.seed)
    parts = [  # each model's rows, numbered by their place in the chunk
        _score(serving, chunk[rows], features, keep_columns).set_axis(np.flatnonzero(rows))
        for serving, rows in ((model, ~mask), (canary.model, mask))
        if rows.any()
    ]
    frame = pd.concat(parts).sort_index().reset_index(drop=True)
    frame["model_version"] = np.where(mask, str(canary.version), served[0])
    frame[ROLE] = np.where(mask, CANARY_ROLE, served[1])
    return frame


class _Agreement:
    """How a shadow's predictions compare with the served ones, row by row, accumulated chunk by chunk.

    A classification: the share of rows with the same label (``agreement``). A regression: the mean
    absolute difference and the distribution of ``shadow - served`` (mean, std, quantiles of a sample).
    """

    def __init__(self, task: str) -> None:
        self.task, self.rows, self.equal, self.absolute = task, 0, 0, 0.0
        self.differences = _RegressionSummary(seed=1)

    def add(self, served: np.ndarray, shadow: np.ndarray) -> None:
        self.rows += len(served)
        if self.task == "classification":
            self.equal += int(np.sum(np.asarray(served).astype(str) == np.asarray(shadow).astype(str)))
            return
        difference = np.asarray(shadow, dtype=float) - np.asarray(served, dtype=float)
        self.absolute += float(np.abs(difference).sum())
        self.differences.add(difference)

    def fields(self) -> dict[str, Any]:
        if self.task == "classification":
            return {"rows": self.rows, "agreement": self.equal / self.rows}
        spread = self.differences.fields()
        return {
            "rows": self.rows,
            "mean_abs_difference": self.absolute / self.rows,
            **{f"difference_{name}": spread[name] for name in ("mean", "std", "p05", "p50", "p95")},
        }


class _ParquetOutput:
    """Chunks appended as row groups to a temporary file that becomes ``out_uri`` only on success.

    Used as a context manager: leaving it without an error publishes the file (``os.replace`` beside
    a local ``out_uri``, an fsspec upload of a local temporary file for a remote one); leaving it on
    an error removes the temporary file and leaves ``out_uri`` as it was. Nothing is written before
    the first chunk.
    """

    def __init__(self, out_uri: str, options: dict[str, Any] | None) -> None:
        self.out_uri, self.options = out_uri, options or {}
        self.rows, self.row_groups = 0, 0
        self._writer: Any = None
        self._tmp: str | None = None

    def write(self, frame: pd.DataFrame, constants: dict[str, str]) -> None:
        """Append ``frame`` and the ``constants`` (as string columns) as one row group."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        for name, value in constants.items():  # built by Arrow: 10x cheaper than a column of Python strings
            table = table.append_column(name, pa.repeat(pa.scalar(value, pa.string()), len(table)))
        if self._writer is None:
            self._tmp = self._temporary_path()
            self._writer = pq.ParquetWriter(self._tmp, table.schema, use_dictionary=_text_columns(table.schema))
        elif not table.schema.equals(self._writer.schema):
            table = _conform(table, self._writer.schema)
        self._writer.write_table(table, row_group_size=len(table))
        self.rows += len(table)
        self.row_groups += 1

    def _temporary_path(self) -> str:
        if storage.is_remote(self.out_uri):
            remove_orphaned_temporaries(Path(tempfile.gettempdir()))
            handle, tmp = tempfile.mkstemp(prefix=f"{_temporary_prefix()}{os.getpid()}-", suffix=".parquet")
        else:
            path = storage._local_path(self.out_uri)
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(handle)
        return tmp

    def __enter__(self) -> _ParquetOutput:
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        try:
            if self._writer is not None:
                self._writer.close()
                if exc_type is None:
                    self._publish()
        finally:
            if self._tmp is not None:
                Path(self._tmp).unlink(missing_ok=True)

    def _publish(self) -> None:
        assert self._tmp is not None
        if not storage.is_remote(self.out_uri):
            os.replace(self._tmp, storage._local_path(self.out_uri))
            return
        import fsspec

        filesystem, path = fsspec.core.url_to_fs(self.out_uri, **self.options)
        filesystem.put_file(self._tmp, path)


def _temporary_prefix() -> str:
    """The start of this machine's temporary predictions files: ``mlc-predictions-<host>-`` (then the pid)."""
    import socket

    return f"mlc-predictions-{re.sub(r'[^A-Za-z0-9.]', '_', socket.gethostname())}-"


def remove_orphaned_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary predictions files in ``folder`` whose writer process is gone; returns them.

    A prediction killed while it writes (SIGKILL, the out-of-memory killer) cannot remove its temporary file;
    the next prediction on the machine does. Only this machine's files are looked at (the host is in the
    name), and only those of a process id that no longer exists.
    """
    removed = []
    prefix = _temporary_prefix()
    for path in folder.glob(f"{glob.escape(prefix)}*.parquet"):
        pid = path.name[len(prefix) :].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _text_columns(schema: Any) -> list[str]:
    """The string columns: dictionary encoding pays off for them, not for predictions or times (2x slower)."""
    import pyarrow as pa

    return [field.name for field in schema if pa.types.is_string(field.type) or pa.types.is_large_string(field.type)]


def _conform(table: Any, schema: Any) -> Any:
    """A later chunk cast to the first chunk's column types (say, a column that is all null in it)."""
    if table.column_names != schema.names:
        raise DataError(f"the chunk's columns {table.column_names} differ from the first chunk's {schema.names}")
    try:
        return table.cast(schema)
    except (ValueError, TypeError, NotImplementedError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(f"a chunk's column types differ from the first chunk's and cannot be cast: {exc}") from None


def _score(model: Any, chunk: pd.DataFrame, features: list[str], keep_columns: list[str]) -> pd.DataFrame:
    """``keep_columns`` of the chunk and the model's ``prediction``."""
    missing = [c for c in dict.fromkeys([*features, *keep_columns]) if c not in chunk.columns]
    if missing:
        raise DataError(f"columns missing from the data to score: {missing} (columns: {list(chunk.columns)})")
    predictions = np.asarray(model.predict(chunk[features]))
    if predictions.ndim == 2 and predictions.shape[1] == 1:  # a pyfunc may answer with one column
        predictions = predictions[:, 0]
    if predictions.shape != (len(chunk),):
        raise DataError(f"the model returned predictions of shape {predictions.shape} for {len(chunk)} rows")
    frame = chunk[keep_columns].reset_index(drop=True)
    frame[PREDICTION] = predictions
    return frame


def predict_window(
    model: Any,
    chunks: Iterable[pd.DataFrame],
    features: list[str],
    keep_columns: list[str],
    out_uri: str,
    options: dict[str, Any] | None = None,
    extra_columns: dict[str, str] | None = None,
    task: str = "regression",
    sink: Sink | None = None,
    shadow: ShadowModel | None = None,
    canary: CanaryRouting | None = None,
) -> PredictionStats:
    """Score every chunk and write the predictions to ``out_uri`` as Parquet, one row group per chunk.

    The file is written to a temporary path and moved into place only when every chunk succeeded: a
    failure leaves ``out_uri`` as it was and no temporary file behind. With ``shadow``, the challenger
    scores every chunk too; its predictions (``model_version`` its version, ``role`` ``shadow``) go to
    ``shadow.out_uri`` the same way, never to ``out_uri`` or ``sink``, and the stats say how far the two
    agree (``shadow``).

    Args:
        model: anything with ``predict(frame)``: a scikit-learn pipeline or an MLflow pyfunc model.
        chunks: the data, e.g. from ``read_chunks``.
        features: the columns given to the model.
        keep_columns: source columns copied beside each prediction (a time column, an id ...).
        out_uri: the Parquet file written (local or ``s3://``).
        options: fsspec options for a remote ``out_uri``.
        extra_columns: constant string columns added to every row (``model_version``, ``role``, window
            bounds ...); in canary mode ``model_version`` and ``role`` are the served model's, and the
            canary's rows get its own.
        task: ``regression`` or ``classification``, for the stats.
        sink: called with each scored chunk as written (see ``sql_sink``), so it is scored once.
        shadow: a challenger scored beside the served model (shadow mode), or None.
        canary: canary mode: the challenger serves its share of the rows (``model_version`` and ``role``
            say per row which model served it), or None.

    Returns:
        The stats of the predictions.

    Raises:
        EmptyWindowError: no chunk held a row; nothing is written.
        DataError: a feature or kept column is missing from a chunk.
    """
    extras = extra_columns or {}
    started = time.perf_counter()
    summary = _ClassCounts() if task == "classification" else _RegressionSummary()
    agreement = _Agreement(task) if shadow is not None else None
    canary_served = 0
    if canary is not None:  # the version and the role go with each row
        served = (extras.get("model_version", ""), extras.get(ROLE, CHAMPION_ROLE))
        extras = {k: v for k, v in extras.items() if k not in ("model_version", ROLE)}
    with _ParquetOutput(out_uri, options) as output, ExitStack() as stack:
        shadow_output = stack.enter_context(_ParquetOutput(shadow.out_uri, options)) if shadow is not None else None
        for chunk in chunks:
            if len(chunk) == 0:
                continue
            if canary is not None:
                frame = _routed(model, served, canary, chunk, features, keep_columns)
                canary_served += int((frame[ROLE] == CANARY_ROLE).sum())
            else:
                frame = _score(model, chunk, features, keep_columns)
            if shadow is not None and shadow_output is not None and agreement is not None:
                shadowed = _score(shadow.model, chunk, features, keep_columns)
                shadow_output.write(shadowed, {**extras, "model_version": shadow.version, ROLE: SHADOW})
                agreement.add(frame[PREDICTION].to_numpy(), shadowed[PREDICTION].to_numpy())
            output.write(frame, extras)
            if sink is not None:
                sink(frame.assign(**extras))
            summary.add(frame[PREDICTION].to_numpy())
        if output.rows == 0:
            window = f"[{extras.get('window_start') or '-inf'}, {extras.get('window_end') or '+inf'})"
            raise EmptyWindowError(f"no rows to score in the data window {window}")
    seconds = time.perf_counter() - started
    shadowing = None
    if shadow is not None and agreement is not None:
        shadowing = {"version": shadow.version, "uri": shadow.out_uri, **agreement.fields()}
    canary_stats = None
    if canary is not None:
        canary_stats = {"version": canary.version, "share": canary.share, "rows": canary_served}
    return PredictionStats(
        task=task,
        rows=output.rows,
        seconds=seconds,
        rows_per_second=output.rows / seconds,
        shadow=shadowing,
        canary=canary_stats,
        **summary.fields(),
    )


@contextmanager
def sql_sink(engine: Any, table: str, window_start: str, window_end: str) -> Iterator[Sink]:
    """A sink that appends scored chunks to ``table`` in one transaction replacing the interval's rows.

    With the first frame, the columns of the frame that an existing table lacks are added to it (nullable,
    see :func:`add_columns`) and the rows of the interval (``window_start`` and ``window_end`` columns
    equal to the given strings) are deleted; each frame given to the sink is appended; leaving without
    an error commits, leaving on an error rolls everything back. Rows of other intervals are never
    touched. The columns are added before the delete because some databases (MySQL, MariaDB) commit
    the open transaction at any ``ALTER TABLE``.

    Args:
        engine: a SQLAlchemy engine or URL.
        table: the table; created by the first append when it does not exist.
        window_start: the interval's ``window_start`` value.
        window_end: the interval's ``window_end`` value.

    Yields:
        The sink: a function appending one frame to the table.
    """
    import sqlalchemy

    own_engine = isinstance(engine, str)
    if own_engine:
        engine = sqlalchemy.create_engine(engine)
    try:
        with engine.begin() as connection:
            exists = sqlalchemy.inspect(connection).has_table(table)
            fresh = True

            def append(frame: pd.DataFrame) -> None:
                nonlocal fresh
                if fresh and exists:
                    _make_room(connection, table, frame, window_start, window_end)
                fresh = False
                frame.to_sql(table, connection, if_exists="append", index=False)

            yield append
            if fresh and exists:  # nothing appended: the interval is left empty
                _make_room(connection, table, pd.DataFrame(), window_start, window_end)
    finally:
        if own_engine:
            engine.dispose()


def _make_room(connection: Any, table: str, frame: pd.DataFrame, window_start: str, window_end: str) -> None:
    """Give an existing ``table`` the columns of ``frame`` it lacks, then delete the interval's rows."""
    import sqlalchemy

    existing = sqlalchemy.Table(table, sqlalchemy.MetaData(), autoload_with=connection)
    known = {column.name for column in existing.columns}
    if not set(frame.columns) <= known:
        add_columns(connection, table, frame, known)
    connection.execute(
        existing.delete().where(existing.c.window_start == window_start, existing.c.window_end == window_end)
    )


#: The SQLAlchemy type of a column added to an existing table, by the NumPy kind of its values (else Text).
_SQL_TYPES = {"f": "Float", "i": "BigInteger", "u": "BigInteger", "b": "Boolean", "M": "DateTime"}


def add_columns(connection: Any, table: str, frame: pd.DataFrame, known: set[str]) -> list[str]:
    """Add the columns of ``frame`` that ``table`` lacks (nullable; its earlier rows hold NULL there).

    A table written before an output column existed (e.g. ``role``) takes the new rows in the same
    transaction as the rows themselves. Returns the columns added.
    """
    import sqlalchemy

    preparer, added = connection.dialect.identifier_preparer, []
    for name in [column for column in frame.columns if column not in known]:
        column_type = getattr(sqlalchemy, _SQL_TYPES.get(frame[name].dtype.kind, "Text"))()
        ddl = f"ALTER TABLE {preparer.quote(table)} ADD COLUMN {preparer.quote(str(name))} "
        connection.execute(sqlalchemy.text(ddl + column_type.compile(dialect=connection.dialect)))
        added.append(str(name))
    return added


def replace_interval(
    engine: Any, table: str, frames: Iterable[pd.DataFrame], window_start: str, window_end: str
) -> int:
    """Replace the rows of one interval of ``table`` with ``frames``, in one transaction; returns the rows written."""
    rows = 0
    with sql_sink(engine, table, window_start, window_end) as sink:
        for frame in frames:
            sink(frame)
            rows += len(frame)
    return rows
