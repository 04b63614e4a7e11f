"""Prepare: the cleaning the spec asks for, then a deterministic train/test split."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from airflow_mlc.core import storage
from airflow_mlc.core.ingest import to_times
from airflow_mlc.errors import DataError
from airflow_mlc.spec import ModelLifecycleSpec

#: Fewest rows each side of the split may have.
MIN_SPLIT_ROWS = 2
#: The hash split's name in ``split_rule``: ``hash2`` since numbers are hashed as float64 (see ``row_hashes``). A
#: champion split by the older ``hash`` rule shares no test rows by rule with a candidate split by this one.
HASH_RULE = "hash2"


@dataclass(frozen=True)
class SplitResult:
    train_uri: str
    test_uri: str
    train_rows: int
    test_rows: int
    dropped_rows: int
    fingerprint: str
    window: dict[str, str | None]
    split_rule: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def clean(frame: pd.DataFrame, spec: ModelLifecycleSpec) -> pd.DataFrame:
    """Keep the spec's columns (and the time column and ``split.key`` columns); drop what the cleaning settings name."""
    missing = [column for column in spec.split.key or [] if column not in frame.columns]
    if missing:
        raise DataError(
            f"{spec.origin}: split.key names {missing}, which the data does not have (columns: {list(frame.columns)})"
        )
    extra = [spec.source.time_column, *(spec.split.key or [])]
    keep = list(spec.columns)
    keep += [column for column in dict.fromkeys(extra) if column and column in frame.columns and column not in keep]
    frame = frame[keep]
    if spec.cleaning.drop_missing_target:
        frame = frame[frame[spec.target].notna()]
    if spec.cleaning.drop_duplicates:
        frame = frame.drop_duplicates()
    return frame.reset_index(drop=True)


def split(frame: pd.DataFrame, spec: ModelLifecycleSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split by time (the test set is the latest rows) or by a stable hash of each row (see ``hash_sides``)."""
    settings = spec.split
    if settings.method == "time":
        test_rows = round(len(frame) * settings.test_size)
        _check_sides(len(frame), test_rows, settings.test_size)
        assert spec.source.time_column is not None  # the spec validator guarantees it
        times = to_times(frame[spec.source.time_column], spec.source)
        ordered = frame.iloc[times.argsort(kind="stable")]
        return ordered.iloc[:-test_rows].reset_index(drop=True), ordered.iloc[-test_rows:].reset_index(drop=True)
    in_test = hash_sides(frame, spec)
    _check_sides(len(frame), int(in_test.sum()), settings.test_size)
    return frame[~in_test].reset_index(drop=True), frame[in_test].reset_index(drop=True)


def _check_sides(rows: int, test_rows: int, test_size: float) -> None:
    if test_rows < MIN_SPLIT_ROWS or rows - test_rows < MIN_SPLIT_ROWS:
        raise DataError(
            f"split: {rows} rows after cleaning are too few for test_size {test_size} "
            f"(each side needs at least {MIN_SPLIT_ROWS}; the test side got {test_rows})"
        )


#: What ``pandas.api.types.infer_dtype`` calls a text column that holds only numbers (decimals from SQL, ...).
_NUMBERS = frozenset({"integer", "floating", "mixed-integer-float", "decimal"})


def row_hashes(frame: pd.DataFrame, columns: list[str], seed: int = 0) -> np.ndarray:
    """A 64-bit hash of each row's values in ``columns``, independent of the row's position and of other rows.

    Numbers and booleans are hashed as float64, so a row hashes alike however a read typed it: an integer
    column is ``int64`` in a window without missing values, ``float64`` in one with any, ``Int64`` or decimals
    from some databases; a boolean one ``bool``, ``object`` or ``boolean``. The train/test split, the rows a
    champion never saw and the canary's rows all depend on it.
    """
    hashes = pd.util.hash_pandas_object(_as_read_anywhere(frame, columns), index=False).to_numpy(dtype=np.uint64)
    # splitmix64's finaliser mixes the seed in, so another seed gives an unrelated assignment
    mixed = hashes ^ np.uint64((seed * 0x9E3779B97F4A7C15) % 2**64)
    with np.errstate(over="ignore"):
        mixed = (mixed ^ (mixed >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        mixed = (mixed ^ (mixed >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return np.asarray(mixed ^ (mixed >> np.uint64(31)))


def _as_read_anywhere(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``frame[columns]`` with every number and boolean as a float64 (-0.0 as 0.0); other values as they are.

    A boolean column is ``bool`` without missing values and ``object`` (or ``boolean``) with them.
    """
    canonical = {}
    for column in columns:
        values = frame[column]
        kind = pd.api.types.infer_dtype(values, skipna=True) if values.dtype == object else None
        if pd.api.types.is_bool_dtype(values.dtype) or kind == "boolean":
            values = values.map({True: 1.0, False: 0.0}).astype("float64")
        elif pd.api.types.is_numeric_dtype(values.dtype):
            values = _plus_zero(values if values.dtype == np.float64 else values.astype("float64"))
        elif kind in _NUMBERS:
            values = _plus_zero(pd.to_numeric(values).astype("float64"))
        canonical[column] = values
    return pd.DataFrame(canonical, index=frame.index, copy=False)


def _plus_zero(values: pd.Series) -> pd.Series:
    """``values`` with -0.0 as 0.0 (a copy only when one is there: a float column is hashed as it is)."""
    array = values.to_numpy()
    return values + 0.0 if np.signbit(array[array == 0]).any() else values


def split_key(spec: ModelLifecycleSpec) -> list[str]:
    """The columns whose values decide a row's side: ``split.key``, else the features and the target."""
    return list(spec.split.key or spec.columns)


def hash_sides(frame: pd.DataFrame, spec: ModelLifecycleSpec) -> np.ndarray:
    """Which rows are test rows (a boolean array): a row is a test row when its hash falls in the first ``test_size``.

    The side of a row depends only on its key values and the seed, never on the other rows of the
    window, so a row keeps its side across retrainings on growing or shifting windows, and rows with
    equal keys (duplicates, one entity's rows) share a side. Each class of a classification is then
    split in the ``test_size`` proportion in expectation; with ``split.stratify`` a class of two or
    more rows that the hash left on one side gives the row whose hash lies nearest the threshold to
    the other side, so every such class is seen by training and by the test.
    """
    hashes = row_hashes(frame, split_key(spec), spec.split.seed)
    in_test = hashes < np.uint64(spec.split.test_size * 2**64)
    if spec.task == "classification" and spec.split.stratify:
        labels = frame[spec.target].to_numpy()
        for label in pd.unique(labels):
            members = np.flatnonzero(labels == label)
            if len(members) < 2:
                continue
            sides = in_test[members]
            if not sides.any():
                in_test[members[np.argmin(hashes[members])]] = True
            elif sides.all():
                in_test[members[np.argmax(hashes[members])]] = False
    return in_test


def split_rule(spec: ModelLifecycleSpec) -> str:
    """The split as recorded with a model: two models split by the same rule share their test rows."""
    settings = spec.split
    if settings.method == "time":
        return f"time:test_size={settings.test_size:g}"
    return f"{HASH_RULE}:key={','.join(split_key(spec))}:test_size={settings.test_size:g}:seed={settings.seed}"


def prepare(
    spec: ModelLifecycleSpec,
    snapshot_uri: str,
    train_uri: str,
    test_uri: str,
    options: dict[str, Any] | None = None,
    window: dict[str, str | None] | None = None,
) -> SplitResult:
    """Clean and split the snapshot; write both sides as Parquet."""
    raw = storage.read_parquet(snapshot_uri, options)
    cleaned = clean(raw, spec)
    train, test = split(cleaned, spec)
    storage.write_parquet(train, train_uri, options)
    storage.write_parquet(test, test_uri, options)
    return SplitResult(
        train_uri=train_uri,
        test_uri=test_uri,
        train_rows=len(train),
        test_rows=len(test),
        dropped_rows=len(raw) - len(cleaned),
        fingerprint=storage.fingerprint(train),
        window=dict(window or {}),
        split_rule=split_rule(spec),
    )
