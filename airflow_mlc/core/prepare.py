"""Prepare: the cleaning the spec asks for, then a deterministic train/test split."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from airflow_mlc.core import storage
from airflow_mlc.errors import DataError
from airflow_mlc.spec import ModelLifecycleSpec

#: Fewest rows each side of the split may have.
MIN_SPLIT_ROWS = 2


@dataclass(frozen=True)
class SplitResult:
    train_uri: str
    test_uri: str
    train_rows: int
    test_rows: int
    dropped_rows: int
    fingerprint: str
    window: dict[str, str | None]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def clean(frame: pd.DataFrame, spec: ModelLifecycleSpec) -> pd.DataFrame:
    """Keep the spec's columns (and the time column); drop what the cleaning settings name."""
    keep = list(spec.columns)
    time_column = spec.source.time_column
    if time_column and time_column in frame.columns and time_column not in keep:
        keep.append(time_column)
    frame = frame[keep]
    if spec.cleaning.drop_missing_target:
        frame = frame[frame[spec.target].notna()]
    if spec.cleaning.drop_duplicates:
        frame = frame.drop_duplicates()
    return frame.reset_index(drop=True)


def split(frame: pd.DataFrame, spec: ModelLifecycleSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split by time (the test set is the latest data) or at random with the spec's seed."""
    settings = spec.split
    test_rows = round(len(frame) * settings.test_size)
    if test_rows < MIN_SPLIT_ROWS or len(frame) - test_rows < MIN_SPLIT_ROWS:
        raise DataError(
            f"split: {len(frame)} rows after cleaning are too few for test_size {settings.test_size} "
            f"(each side needs at least {MIN_SPLIT_ROWS})"
        )
    if settings.method == "time":
        assert spec.source.time_column is not None  # the spec validator guarantees it
        times = pd.to_datetime(frame[spec.source.time_column], utc=True)
        ordered = frame.iloc[times.argsort(kind="stable")]
        return ordered.iloc[:-test_rows].reset_index(drop=True), ordered.iloc[-test_rows:].reset_index(drop=True)
    test = frame.sample(n=test_rows, random_state=settings.seed)
    train = frame.drop(index=test.index)
    return train.reset_index(drop=True), test.reset_index(drop=True)


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
    )
