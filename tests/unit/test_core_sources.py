"""The source seam on files: a Parquet folder (partitioned or not) reads, chunks and counts as one file does."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from airflow_mlc.core.sources import FileSource, open_source
from airflow_mlc.core.window import Window
from airflow_mlc.errors import DataError
from airflow_mlc.spec import SourceSpec
from tests.conftest import BIKES_CSV

pytestmark = pytest.mark.unit

MARCH = Window(datetime(2011, 3, 1, tzinfo=UTC), datetime(2011, 4, 1, tzinfo=UTC))


@pytest.fixture(scope="module")
def months() -> pd.DataFrame:
    frame = pd.read_csv(BIKES_CSV)
    frame = frame[frame["timestamp"] < "2011-05-01"].reset_index(drop=True)
    return frame.assign(month=frame["timestamp"].str[5:7].astype(int))


def in_march(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[(frame["timestamp"] >= "2011-03-01") & (frame["timestamp"] < "2011-04-01")]


@pytest.mark.parametrize("layout", ["partitioned", "flat"])
def test_a_parquet_folder_reads_chunks_and_counts_the_window_as_one_file(months, tmp_path: Path, layout) -> None:
    folder = tmp_path / "rentals"
    if layout == "partitioned":  # month=1/..., month=2/...: the month comes back as a column
        months.to_parquet(folder, partition_cols=["month"], index=False)
    else:
        folder.mkdir()
        for number, part in enumerate((months.iloc[:1500], months.iloc[1500:])):
            part.to_parquet(folder / f"part-{number}.parquet", index=False)
    spec = SourceSpec(path=str(folder), format="parquet", time_column="timestamp")
    expected = in_march(months)

    with open_source(spec) as source:
        assert isinstance(source, FileSource)
        whole = source.read(MARCH)
        chunks = list(source.chunks(MARCH, 200))
        counted = source.count(MARCH)

    assert counted == len(whole) == len(expected) > 600
    assert max(len(chunk) for chunk in chunks) <= 200 and len(chunks) > 3
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), whole)
    assert sorted(whole["timestamp"]) == sorted(expected["timestamp"])
    assert whole.set_index("timestamp")["bikers"].sort_index().tolist() == (
        expected.set_index("timestamp")["bikers"].sort_index().tolist()
    )
    assert set(whole["month"].astype(int)) == {3}


def test_a_folder_that_does_not_exist_counts_zero_and_fails_a_read(tmp_path: Path) -> None:
    spec = SourceSpec(path=str(tmp_path / "later"), format="parquet", time_column="timestamp")
    with open_source(spec) as source:
        assert source.count(MARCH) == 0  # the data sensor waits for it
        with pytest.raises(DataError, match="does not exist"):
            source.read(MARCH)


def test_a_csv_source_that_is_a_folder_is_refused_naming_it(tmp_path: Path) -> None:
    folder = tmp_path / "csvs"
    folder.mkdir()
    spec = SourceSpec(path=str(folder), format="csv", time_column="timestamp")
    with open_source(spec) as source:
        for read in (lambda: source.read(MARCH), lambda: list(source.chunks(MARCH, 10))):
            with pytest.raises(DataError, match=f"file '{folder}' is a folder: a folder source must be Parquet"):
                read()
