"""The monitoring core: Evidently drift and quality verdicts, the reference, the retraining decision."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from airflow_mlc.core.drift import (
    NothingToMonitorError,
    drift_report,
    quality_check,
    reference_uri,
    relative_loss,
)
from airflow_mlc.core.evaluate import newest_rows
from airflow_mlc.core.retrain import PastRequest, decide_retrain, signals
from airflow_mlc.errors import BadInputError, DataError, EmptyWindowError
from airflow_mlc.spec import DriftSpec, ModelLifecycleSpec, load_spec
from tests.conftest import BIKES_SPEC

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def spec() -> ModelLifecycleSpec:
    return load_spec(BIKES_SPEC)


@pytest.fixture(scope="module")
def hourly(spec: ModelLifecycleSpec) -> pd.DataFrame:
    return pd.read_csv(str(spec.source.path), parse_dates=["timestamp"])


def window(frame: pd.DataFrame, start: str, end: str) -> pd.DataFrame:
    return frame[(frame.timestamp >= start) & (frame.timestamp < end)].reset_index(drop=True)


def with_drift(spec: ModelLifecycleSpec, **settings) -> ModelLifecycleSpec:
    drift = DriftSpec.model_validate({**spec.monitoring.drift.model_dump(), **settings})
    return spec.model_copy(update={"monitoring": spec.monitoring.model_copy(update={"drift": drift})})


def test_a_winter_window_does_not_drift_from_winter_training_data(spec, hourly) -> None:
    result, snapshot = drift_report(
        window(hourly, "2011-01-01", "2011-03-13"), window(hourly, "2011-03-04", "2011-04-01"), spec
    )

    assert not result.detected
    assert result.drifted_columns == {}
    assert [c.column for c in result.columns] == ["temp", "atemp", "hum", "windspeed"]
    assert all(c.method == "wasserstein" and c.threshold == 1.0 for c in result.columns)
    assert "DataDriftPreset" in snapshot.json() or snapshot.dict()["metrics"]


def test_spring_drifts_in_temperature(spec, hourly) -> None:
    result, _ = drift_report(
        window(hourly, "2011-01-01", "2011-03-13"), window(hourly, "2011-04-17", "2011-05-15"), spec
    )

    assert result.detected
    assert set(result.drifted_columns) == {"temp", "atemp"}
    assert result.drifted_share == 0.5
    assert result.drifted_columns["temp"] > 1.0
    summary = result.summary()
    assert summary["drift_detected"] is True and summary["current_rows"] == len(
        window(hourly, "2011-04-17", "2011-05-15")
    )


def test_a_controlled_shift_drifts_exactly_the_shifted_column(spec, hourly) -> None:
    reference = window(hourly, "2011-02-01", "2011-03-01")
    shifted = reference.assign(windspeed=reference.windspeed + 0.3)
    custom = with_drift(
        spec, columns=["temp", "windspeed"], threshold=None, per_column={"temp": {"method": "ks", "threshold": 0.01}}
    )

    result, _ = drift_report(reference, shifted, custom)

    assert result.drifted_columns.keys() == {"windspeed"}
    assert result.detected  # one of two columns reaches the 0.5 share
    methods = {c.column: c.method for c in result.columns}
    assert methods["temp"] == "ks"
    assert next(c for c in result.columns if c.column == "temp").score == pytest.approx(1.0)  # identical: p-value 1


def test_an_unknown_stattest_is_bad_input(spec, hourly) -> None:
    reference = window(hourly, "2011-01-01", "2011-02-01")
    with pytest.raises(BadInputError, match="monitoring.drift: No stattest found of name wasserstien"):
        drift_report(reference, reference, with_drift(spec, method="wasserstien"))


def test_bad_windows_are_clear_errors(spec, hourly) -> None:
    reference = window(hourly, "2011-01-01", "2011-02-01")
    with pytest.raises(EmptyWindowError, match="no rows"):
        drift_report(reference, reference.iloc[0:0], spec)
    with pytest.raises(DataError, match=r"monitored window: columns \['hum'\] are missing"):
        drift_report(reference, reference.drop(columns=["hum"]), spec)
    with pytest.raises(DataError, match="reference dataset: columns"):
        drift_report(reference.drop(columns=["temp"]), reference, spec)


def test_the_reference_is_the_spec_s_or_the_champion_s_training_data(spec) -> None:
    champion = SimpleNamespace(version="3", tags={"mlc.train_data_uri": "s3://bucket/train.parquet"})
    assert reference_uri(spec, champion) == "s3://bucket/train.parquet"
    assert reference_uri(with_drift(spec, reference="/data/ref.csv"), champion) == "/data/ref.csv"
    with pytest.raises(NothingToMonitorError, match="no champion yet"):
        reference_uri(spec, None)
    with pytest.raises(BadInputError, match="champion version 3 .* records no training data"):
        reference_uri(spec, SimpleNamespace(version="3", tags={}))


def test_quality_compares_live_metrics_with_the_evaluation(spec, hourly) -> None:
    from sklearn.linear_model import LinearRegression

    winter = window(hourly, "2011-01-01", "2011-03-13")
    model = LinearRegression().fit(winter[spec.features.numeric], winter[spec.target])
    numeric_only = spec.model_copy(update={"features": spec.features.model_copy(update={"categorical": []})})
    spring = window(hourly, "2011-04-17", "2011-05-15")

    result, snapshot = quality_check(numeric_only, model, spring, baseline=30.0)
    assert result.labelled_rows == len(spring)
    assert result.live_metrics["rmse"] > 30.0
    assert result.degradation == pytest.approx(result.live_metrics["rmse"] / 30.0 - 1)
    assert result.degraded and snapshot is not None

    unlabelled, no_report = quality_check(numeric_only, model, spring.assign(bikers=None), baseline=30.0)
    assert (unlabelled.labelled_rows, unlabelled.degraded, no_report) == (0, False, None)


def test_relative_loss_knows_which_way_is_better() -> None:
    assert relative_loss(120.0, 100.0, "rmse") == pytest.approx(0.2)
    assert relative_loss(0.8, 1.0, "r2") == pytest.approx(0.2)
    assert relative_loss(0.9, 0.8, "f1") < 0


DRIFT = {"drift_detected": True, "drifted_share": 0.5, "drift_share_threshold": 0.5, "drifted_columns": {"temp": 2.3}}
APRIL = {"start": "2011-04-01T00:00:00+00:00", "end": "2011-04-29T00:00:00+00:00"}


def test_no_signal_no_request() -> None:
    decision = decide_retrain(signals({**DRIFT, "drift_detected": False}, None), APRIL, [], 14)
    assert not decision.request and "no signal" in decision.reason


def test_a_signal_requests_once_per_window_and_not_inside_the_cooldown() -> None:
    found = signals(DRIFT, None)
    assert "temp" in found[0]
    assert decide_retrain(found, APRIL, [], 14).request

    same = [PastRequest("run_a", APRIL["start"], APRIL["end"])]
    assert "already requested for this window by run run_a" in decide_retrain(found, APRIL, same, 14).reason

    recent = [PastRequest("run_b", "2011-03-25T00:00:00+00:00", "2011-04-22T00:00:00+00:00")]
    decision = decide_retrain(found, APRIL, recent, 14)
    assert not decision.request and "cooldown of 14 days" in decision.reason

    older = [PastRequest("run_c", "2011-03-01T00:00:00+00:00", "2011-04-01T00:00:00+00:00")]
    assert decide_retrain(found, APRIL, older, 14).request
    assert decide_retrain(found, APRIL, recent + same, 14, force=True).request


def test_quality_loss_alone_is_a_signal() -> None:
    quality = {
        "degraded": True,
        "metric": "rmse",
        "live_metrics": {"rmse": 80.0},
        "labelled_rows": 300,
        "degradation": 1.0,
        "baseline": 40.0,
        "tolerance": 0.3,
    }
    found = signals({**DRIFT, "drift_detected": False}, quality)
    assert found == ["quality: rmse is 80 on 300 labelled rows, 100% worse than at evaluation (40; tolerance 30%)"]


def test_the_comparison_uses_only_rows_newer_than_the_champion_s_data(hourly) -> None:
    test = window(hourly, "2011-03-20", "2011-04-10")
    newer, described = newest_rows(test, "timestamp", "2011-04-01T00:00:00+00:00")
    assert newer.timestamp.min() >= pd.Timestamp("2011-04-01") and len(newer) < len(test)
    assert (
        described == f"the {len(newer)} test rows newer than the champion's data (which ends 2011-04-01T00:00:00+00:00)"
    )

    same, fallback = newest_rows(test, "timestamp", "2011-05-01T00:00:00+00:00")
    assert len(same) == len(test) and "none is newer" in fallback
