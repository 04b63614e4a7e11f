"""Ingest, validate and prepare on the real bike data, without Airflow."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_mlc.core import storage
from airflow_mlc.core.ingest import filter_window, ingest
from airflow_mlc.core.prepare import clean, prepare, split
from airflow_mlc.core.sources import open_source
from airflow_mlc.core.validate import validate_frame
from airflow_mlc.core.window import Window, resolve_window
from airflow_mlc.errors import BadInputError, EmptyWindowError
from airflow_mlc.spec import load_spec
from tests.conftest import BIKES_SPEC

pytestmark = pytest.mark.unit
UTC = timezone.utc


@pytest.fixture(scope="module")
def spec():
    return load_spec(BIKES_SPEC)


def test_window_defaults_to_lookback_before_the_run_end() -> None:
    end = datetime(2011, 4, 1, tzinfo=UTC)
    window = resolve_window(None, None, end, lookback_days=90)
    assert window == Window(datetime(2011, 1, 1, tzinfo=UTC), end)


def test_airflows_pendulum_times_work_as_the_default_end() -> None:
    import pendulum

    window = resolve_window(None, None, pendulum.datetime(2011, 4, 1, tz="UTC"), lookback_days=90)
    assert window == Window(datetime(2011, 1, 1, tzinfo=UTC), datetime(2011, 4, 1, tzinfo=UTC))
    assert type(window.end) is datetime


def test_explicit_window_wins_and_naive_times_are_utc() -> None:
    window = resolve_window("2011-02-01", "2011-03-01T00:00:00", datetime(2020, 1, 1, tzinfo=UTC), 90)
    assert window.start == datetime(2011, 2, 1, tzinfo=UTC)
    assert window.end == datetime(2011, 3, 1, tzinfo=UTC)


def test_a_date_rendered_as_a_number_still_reads() -> None:
    assert resolve_window(20110201, None, None, None).start == datetime(2011, 2, 1, tzinfo=UTC)


def test_bad_window_bounds_are_refused() -> None:
    with pytest.raises(BadInputError, match="not an ISO 8601"):
        resolve_window("yesterday", None, None, None)
    with pytest.raises(BadInputError, match="is not before end"):
        resolve_window("2011-03-01", "2011-02-01", None, None)


def test_filter_window_is_half_open(spec, bikes: pd.DataFrame) -> None:
    window = Window(datetime(2011, 1, 2, tzinfo=UTC), datetime(2011, 1, 3, tzinfo=UTC))
    day = filter_window(bikes, spec.source, window)
    assert len(day) == 23  # 2011-01-02 has 23 recorded hours in this data set
    assert day["timestamp"].min() == "2011-01-02T00:00:00"
    assert day["timestamp"].max() < "2011-01-03"


def test_ingest_writes_the_window_as_parquet(spec, tmp_path: Path) -> None:
    window = Window(datetime(2011, 1, 1, tzinfo=UTC), datetime(2011, 2, 1, tzinfo=UTC))
    out = str(tmp_path / "run" / "snapshot.parquet")
    result = ingest(open_source(spec.source), window, out)
    written = pd.read_parquet(out)
    assert result.rows == len(written) == 688  # hours of January 2011 in the data set
    assert result.fingerprint == storage.fingerprint(written)
    assert result.window == {"start": "2011-01-01T00:00:00+00:00", "end": "2011-02-01T00:00:00+00:00"}
    assert not list((tmp_path / "run").glob("*.tmp"))


def test_ingest_of_an_empty_window_fails_and_writes_nothing(spec, tmp_path: Path) -> None:
    window = Window(datetime(1999, 1, 1, tzinfo=UTC), datetime(1999, 2, 1, tzinfo=UTC))
    out = tmp_path / "snapshot.parquet"
    with pytest.raises(EmptyWindowError, match=r"no rows in the data window \[1999-01-01"):
        ingest(open_source(spec.source), window, str(out))
    assert not out.exists()


def test_ingest_from_sql_binds_the_window(spec, bikes: pd.DataFrame, tmp_path: Path) -> None:
    import sqlalchemy

    url = f"sqlite:///{tmp_path / 'rides.db'}"
    bikes.to_sql("rides", sqlalchemy.create_engine(url), index=False)
    source = spec.source.model_copy(
        update={"path": None, "url": url, "sql": "select * from rides where timestamp >= :window_start"}
    )
    window = Window(datetime(2011, 12, 31, tzinfo=UTC), None)
    result = ingest(open_source(source), window, str(tmp_path / "s.parquet"))
    assert result.rows == 24


def test_clean_data_passes_the_contract(spec, bikes: pd.DataFrame) -> None:
    result, snapshot = validate_frame(bikes, spec)
    assert result.passed, result.violations
    assert result.tests_run > 20
    assert snapshot is not None


def test_contract_violations_name_column_rule_and_value(spec, bikes: pd.DataFrame) -> None:
    broken = bikes.copy()
    broken.loc[3, "hum"] = 7.0
    broken.loc[:99, "temp"] = np.nan
    broken.loc[5, "weathersit"] = "tornado"
    result, _ = validate_frame(broken, spec)
    assert not result.passed
    text = "\n".join(result.violations)
    assert "Maximum value of 'hum'" in text and "7.000" in text
    assert "Column 'temp' missing values" in text
    assert (
        "column 'weathersit': 1 row holds values outside the allowed list "
        "['clear', 'cloudy/misty', 'light rain/snow', 'heavy rain/snow']: 'tornado' (1)"
    ) in result.violations
    assert "values out of list" not in text  # Evidently's count is replaced by the values themselves


def test_missing_target_and_wrong_types_are_reported(spec, bikes: pd.DataFrame) -> None:
    result, snapshot = validate_frame(bikes.drop(columns=["bikers"]), spec)
    assert not result.passed and snapshot is None
    assert result.violations[0].startswith("column 'bikers': required by the spec but missing")
    text_temp = bikes.assign(temp=bikes["temp"].astype(str))
    result, _ = validate_frame(text_temp, spec)
    assert result.violations == ["column 'temp': must be numeric, found dtype object"]


def test_time_split_puts_the_latest_rows_in_the_test_set(spec, bikes: pd.DataFrame) -> None:
    train, test = split(clean(bikes, spec), spec)
    assert len(test) == round(len(bikes) * 0.2)
    assert train["timestamp"].max() < test["timestamp"].min()


def test_random_split_is_deterministic(spec, bikes: pd.DataFrame) -> None:
    random_spec = spec.model_copy(update={"split": spec.split.model_copy(update={"method": "random"})})
    first = split(bikes, random_spec)[1]
    second = split(bikes, random_spec)[1]
    pd.testing.assert_frame_equal(first, second)


def test_prepare_drops_missing_targets_and_writes_both_sides(spec, bikes: pd.DataFrame, tmp_path: Path) -> None:
    bikes.loc[:9, "bikers"] = np.nan
    storage.write_parquet(bikes, str(tmp_path / "snap.parquet"))
    result = prepare(
        spec, str(tmp_path / "snap.parquet"), str(tmp_path / "train.parquet"), str(tmp_path / "test.parquet")
    )
    assert result.dropped_rows == 10
    assert result.train_rows + result.test_rows == len(bikes) - 10
    assert len(pd.read_parquet(result.test_uri)) == result.test_rows
