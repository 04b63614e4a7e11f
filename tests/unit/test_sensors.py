"""The sensors, their probes and ProbeTrigger against real files, a SQLite database and a real MLflow store."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout, TaskDeferred

from airflow_mlc.core import tracking
from airflow_mlc.core.probes import newest_drift
from airflow_mlc.core.registry import CHAMPION
from airflow_mlc.core.sources import count_window_rows
from airflow_mlc.core.window import Window
from airflow_mlc.sensors.data import DataAvailableSensor
from airflow_mlc.sensors.drift import DriftSensor
from airflow_mlc.sensors.model import ModelVersionSensor
from airflow_mlc.spec import ModelLifecycleSpec, SourceSpec, parse_spec
from airflow_mlc.testing import first_event
from airflow_mlc.triggers import probe as trigger_module
from airflow_mlc.triggers.probe import ProbeTrigger
from airflow_mlc.triggers.probes import data_available, drift, model_version, run_probe

pytestmark = pytest.mark.unit

CONN_ID = "mlc_sensors_test"
RUN_END = datetime(2024, 1, 8, tzinfo=timezone.utc)
WINDOW = Window(datetime(2024, 1, 1, tzinfo=timezone.utc), RUN_END)
MODEL = "sensed"


def hourly(start: str, hours: int) -> pd.DataFrame:
    times = pd.date_range(start, periods=hours, freq="h")
    return pd.DataFrame({"timestamp": times, "x": range(hours), "y": [2.0 * i for i in range(hours)]})


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write all at once, so a probe polling meanwhile never reads half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


def spec_data(source: dict[str, Any], name: str = MODEL, **monitoring: Any) -> dict[str, Any]:
    """A small regression spec on ``source``, as a mapping (a spec file's content)."""
    return {
        "name": name,
        "task": "regression",
        "source": source,
        "target": "y",
        "features": {"numeric": ["x"]},
        "model": {"estimator": "sklearn.linear_model.Ridge"},
        "gates": {"metric": "rmse"},
        "monitoring": {"window_days": 7, "min_rows": 2, **monitoring},
        "mlflow": {"conn_id": CONN_ID},
    }


def make_spec(source: dict[str, Any], **monitoring: Any) -> ModelLifecycleSpec:
    return parse_spec(spec_data(source, **monitoring))


def context(end: datetime = RUN_END) -> dict[str, Any]:
    """What the sensors read from a task's context: the run's data interval end."""
    return {"data_interval_end": end, "dag_run": None, "ti": None}


def arguments(path: Path, start: str | None = "2024-01-01T00:00:00+00:00", min_rows: int = 2) -> dict[str, Any]:
    return {
        "source": SourceSpec(path=str(path), time_column="timestamp").model_dump(),
        "window_start": start,
        "window_end": "2024-01-08T00:00:00+00:00",
        "min_rows": min_rows,
    }


# --- the data probe: files and SQL ---------------------------------------------------------------------


def test_a_missing_file_is_no_data(tmp_path: Path) -> None:
    done, detail = data_available(**arguments(tmp_path / "later.csv"))
    assert not done
    assert detail == {
        "rows": 0,
        "min_rows": 2,
        "window": {"start": "2024-01-01T00:00:00+00:00", "end": "2024-01-08T00:00:00+00:00"},
        "source": str(tmp_path / "later.csv"),
    }


def test_rows_count_only_inside_the_window(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    write_csv(pd.concat([hourly("2023-12-31 22:00", 2), hourly("2024-01-07 21:00", 5)]), path)
    done, detail = data_available(**arguments(path))
    assert done and detail["rows"] == 3  # 21:00, 22:00, 23:00 of Jan 7; Dec 31 and Jan 8 fall outside
    assert not data_available(**arguments(path, min_rows=4))[0]
    done, detail = data_available(**arguments(path, start=None, min_rows=5))
    assert done and detail["rows"] == 5 and detail["window"] == {"start": None, "end": "2024-01-08T00:00:00+00:00"}


def test_rows_outside_the_window_are_no_data(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    hourly("2024-02-01", 24).to_parquet(path, index=False)
    done, detail = data_available(**arguments(path))
    assert not done and detail["rows"] == 0


def test_a_sql_source_is_counted_by_the_database(tmp_path: Path) -> None:
    import sqlalchemy

    url = f"sqlite:///{tmp_path / 'source.db'}"
    engine = sqlalchemy.create_engine(url)
    pd.concat([hourly("2023-12-31 20:00", 4), hourly("2024-01-03", 10), hourly("2024-01-09", 3)]).to_sql(
        "rides", engine, index=False
    )
    engine.dispose()
    filtered = SourceSpec(sql="SELECT * FROM rides;", url=url, time_column="timestamp")
    assert count_window_rows(filtered, WINDOW) == 10
    assert count_window_rows(filtered, Window(None, WINDOW.end)) == 14
    assert count_window_rows(filtered, Window(None, None)) == 17
    bound = SourceSpec(sql="SELECT * FROM rides WHERE timestamp < :window_end", url=url)
    assert count_window_rows(bound, WINDOW) == 14
    done, detail = data_available(filtered.model_dump(), "2024-01-01", "2024-01-08", 10)
    assert done and detail["rows"] == 10 and detail["source"] == "sql"
    assert not data_available(filtered.model_dump(), "2024-01-05", "2024-01-08", 1)[0]


def test_an_integer_year_column_is_counted_in_its_unit(tmp_path: Path) -> None:
    import sqlalchemy

    yearly = pd.DataFrame({"year": [2022, 2023, 2024, 2024, 2025], "x": range(5), "y": range(5)})
    path = tmp_path / "yearly.csv"
    write_csv(yearly, path)
    url = f"sqlite:///{tmp_path / 'source.db'}"
    engine = sqlalchemy.create_engine(url)
    yearly.to_sql("yearly", engine, index=False)
    engine.dispose()
    year_2024 = {"window_start": "2024-01-01", "window_end": "2025-01-01", "min_rows": 2}
    for source in (
        SourceSpec(path=str(path), time_column="year", time_unit="year"),
        SourceSpec(sql="SELECT * FROM yearly", url=url, time_column="year", time_unit="year"),
    ):
        done, detail = data_available(source.model_dump(), **year_2024)
        assert done and detail["rows"] == 2
    sensor = DataAvailableSensor(
        task_id="wait_for_years",
        spec=make_spec({"path": str(path), "time_column": "year", "time_unit": "year"}),
        window_start="2024-01-01",
        window_end="2025-01-01",
    )
    assert sensor.poke(context()).xcom_value["rows"] == 2


def test_integers_without_a_unit_fail_the_sensor_without_retries(tmp_path: Path) -> None:
    path = tmp_path / "yearly.csv"
    write_csv(pd.DataFrame({"year": [2024, 2025], "x": [1, 2], "y": [1.0, 2.0]}), path)
    spec = make_spec({"path": str(path), "time_column": "year"})
    sensor = DataAvailableSensor(task_id="wait", spec=spec, poke_interval=5, timeout=600)
    with pytest.raises(AirflowFailException, match=r"time column 'year' holds integers \(e.g. 2024, 2025\)"):
        sensor.poke(context())


@pytest.fixture
def probe_attempts(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The arguments of every probe the trigger runs, in order."""
    attempts: list[Any] = []
    original = trigger_module.run_probe

    def counted(*args: Any) -> Any:
        attempts.append(args)
        return original(*args)

    monkeypatch.setattr(trigger_module, "run_probe", counted)
    return attempts


def test_a_wrong_query_fails_the_sensor_and_the_trigger_at_once(tmp_path: Path, probe_attempts: list[Any]) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    spec = make_spec({"sql": "SELECT * FROM no_such_table", "url": url, "time_column": "timestamp"})
    sensor = DataAvailableSensor(task_id="wait", spec=spec, poke_interval=5, timeout=600)
    expected = "query 'SELECT * FROM no_such_table' failed: no such table: no_such_table"
    with pytest.raises(AirflowFailException) as failure:
        sensor.poke(context())
    assert str(failure.value).startswith(expected)
    event = asyncio.run(first_event(ProbeTrigger("data_available", sensor.probe_arguments(context()), 0.01)))
    assert event["status"] == "error" and event["message"].startswith(expected)
    assert len(probe_attempts) == 1  # bad input: not tried again


def test_a_malformed_file_fails_the_sensor_without_retries(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    path.write_text("timestamp,x,y\n2024-01-02,1,2\n")
    with pytest.raises(AirflowFailException, match=r"data.parquet': not a readable Parquet file"):
        data_sensor(path).poke(context())
    ragged = tmp_path / "data.csv"
    ragged.write_text("timestamp,x,y\n2024-01-02,1,2\n2024-01-03,1,2,3,4\n")
    event = asyncio.run(first_event(ProbeTrigger("data_available", arguments(ragged), poke_interval=0.01)))
    assert event["status"] == "error"
    assert event["message"].startswith(f"file '{ragged}': not a readable CSV file: ")


# --- the MLflow probes ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tracking.MlflowTarget]:
    """A real MLflow store (SQLite) behind the Airflow connection ``CONN_ID``, given as an env variable."""
    import json

    target = tracking.embedded_target(tmp_path_factory.mktemp("sensors-mlflow"))
    extra = {"tracking_uri": target.tracking_uri, "artifact_location": target.artifact_location}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps({"conn_type": "mlflow", "extra": extra}))
        yield target


@pytest.fixture(scope="module")
def logged_model(mlflow_store: tracking.MlflowTarget) -> str:
    """The URI of a tiny scikit-learn model logged to the store."""
    import mlflow
    from sklearn.dummy import DummyRegressor

    client = mlflow_store.activate()
    experiment_id = tracking.ensure_experiment(client, "sensors", mlflow_store.artifact_location)
    with mlflow.start_run(experiment_id=experiment_id):
        model = DummyRegressor().fit([[0.0], [1.0]], [0.0, 1.0])
        # Explicit requirements: MLflow's inference of them takes seconds.
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
    return str(info.model_uri)


def register(mlflow_store: tracking.MlflowTarget, model_uri: str, name: str) -> str:
    import mlflow

    mlflow_store.activate()
    return str(mlflow.register_model(model_uri, name).version)


def test_model_version_waits_for_the_alias(mlflow_store, logged_model) -> None:
    name = "sensed_alias"
    assert model_version(CONN_ID, name, CHAMPION) == (
        False,
        {"model": name, "alias": CHAMPION, "version": None, "newer_than": None},
    )
    version = register(mlflow_store, logged_model, name)
    assert not model_version(CONN_ID, name, CHAMPION)[0]
    mlflow_store.activate().set_registered_model_alias(name, CHAMPION, version)
    assert model_version(CONN_ID, name, CHAMPION) == (
        True,
        {"model": name, "alias": CHAMPION, "version": version, "newer_than": None},
    )
    assert not model_version(CONN_ID, name, CHAMPION, newer_than=version)[0]  # no new champion yet


def test_model_version_waits_for_a_newer_version(mlflow_store, logged_model) -> None:
    name = "sensed_newer"
    assert not model_version(CONN_ID, name, None, newer_than=0)[0]  # not registered at all
    first = register(mlflow_store, logged_model, name)
    assert model_version(CONN_ID, name, None, newer_than="0") == (
        True,
        {"model": name, "alias": None, "version": first, "newer_than": 0},
    )
    assert not model_version(CONN_ID, name, "", newer_than=first)[0]
    second = register(mlflow_store, logged_model, name)
    done, detail = run_probe("model_version", {"mlflow_conn_id": CONN_ID, "model": name, "newer_than": first})
    assert done and detail["version"] == second == str(int(first) + 1)


def monitoring_run(store: tracking.MlflowTarget, model: str, window_end: str, drifted: bool) -> str:
    client = store.activate()
    experiment_id = tracking.ensure_experiment(client, f"mlc/{model}/monitoring", store.artifact_location)
    tags = {
        tracking.TAG_KIND: tracking.KIND_MONITORING,
        tracking.TAG_MODEL: model,
        tracking.TAG_WINDOW_END: window_end,
        tracking.TAG_DRIFT_DETECTED: str(drifted).lower(),
        tracking.TAG_DRIFTED_SHARE: "0.75" if drifted else "0.1",
        tracking.TAG_DRIFT_REPORT: f"file:///reports/{window_end[:10]}.html",
    }
    run = client.create_run(experiment_id, tags=tags)
    client.set_terminated(run.info.run_id)
    return str(run.info.run_id)


def test_drift_follows_the_newest_monitoring_run(mlflow_store) -> None:
    model, experiment = "drifty", "mlc/drifty/monitoring"
    assert drift(CONN_ID, experiment, model) == (
        False,
        {"run_id": None, "window_end": None, "drift_detected": False, "drifted_share": 0.0, "report_uri": None},
    )
    old = monitoring_run(mlflow_store, model, "2024-01-01T00:00:00+00:00", drifted=True)
    monitoring_run(mlflow_store, "another_model", "2024-02-01T00:00:00+00:00", drifted=True)
    assert drift(CONN_ID, experiment, model) == (
        True,
        {
            "run_id": old,
            "window_end": "2024-01-01T00:00:00+00:00",
            "drift_detected": True,
            "drifted_share": 0.75,
            "report_uri": "file:///reports/2024-01-01.html",
        },
    )
    assert not drift(CONN_ID, experiment, model, since="2024-01-02")[0]  # that run's window is too old
    assert drift(CONN_ID, experiment, model, since="2024-01-01T00:00:00Z")[0]
    calm = monitoring_run(mlflow_store, model, "2024-01-08T00:00:00+00:00", drifted=False)
    done, detail = drift(CONN_ID, experiment, model)
    assert not done and detail["run_id"] == calm and detail["drifted_share"] == 0.1  # the newer run wins
    client = mlflow_store.activate()
    assert newest_drift(client, experiment, model, "2024-01-09") is None


# --- ProbeTrigger --------------------------------------------------------------------------------------


def test_the_trigger_serializes_and_round_trips(tmp_path: Path) -> None:
    trigger = ProbeTrigger("data_available", arguments(tmp_path / "data.csv"), poke_interval=30)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_mlc.triggers.probe.ProbeTrigger"
    assert kwargs == {"probe": "data_available", "arguments": arguments(tmp_path / "data.csv"), "poke_interval": 30.0}
    assert ProbeTrigger(**kwargs).serialize() == (classpath, kwargs)
    with pytest.raises(ValueError, match="unknown probe 'nothing'"):
        ProbeTrigger("nothing", {})


def test_the_trigger_fires_once_the_file_appears(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    trigger = ProbeTrigger("data_available", arguments(path), poke_interval=0.02)

    async def scenario() -> Any:
        waiting = asyncio.ensure_future(first_event(trigger))
        await asyncio.sleep(0.2)
        assert not waiting.done()  # polled a missing file, and waits
        write_csv(hourly("2024-01-05", 3), path)
        return await waiting

    event = asyncio.run(scenario())
    assert event == {
        "status": "success",
        "rows": 3,
        "min_rows": 2,
        "window": {"start": "2024-01-01T00:00:00+00:00", "end": "2024-01-08T00:00:00+00:00"},
        "source": str(path),
    }


def test_the_trigger_retries_a_failing_probe_then_reports_it(tmp_path: Path, probe_attempts: list[Any]) -> None:
    """A probe failing for another reason than bad input (here: a database that refuses connections) is retried."""
    import socket

    with socket.socket() as closed:  # a loopback port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    source = SourceSpec(sql="SELECT 1 AS x", url=f"postgresql+psycopg://u@127.0.0.1:{port}/none").model_dump()
    trigger = ProbeTrigger("data_available", {**arguments(tmp_path / "x.csv"), "source": source}, poke_interval=0.01)
    event = asyncio.run(first_event(trigger))
    assert event["status"] == "error" and len(probe_attempts) == ProbeTrigger.max_failures


def test_the_trigger_reports_a_failing_probe(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    write_csv(hourly("2024-01-05", 3).rename(columns={"timestamp": "when"}), path)
    event = asyncio.run(first_event(ProbeTrigger("data_available", arguments(path), poke_interval=0.01)))
    assert event["status"] == "error"
    assert "time column 'timestamp' is missing" in event["message"]
    trigger = ProbeTrigger("model_version", {"mlflow_conn_id": "no_such_conn", "model": "m"}, poke_interval=0.01)
    assert asyncio.run(first_event(trigger)) == {
        "status": "error",
        "message": "MLflow connection 'no_such_conn' does not exist",
    }


# --- the sensors ---------------------------------------------------------------------------------------


def data_sensor(path: Path, **kwargs: Any) -> DataAvailableSensor:
    spec = make_spec({"path": str(path), "time_column": "timestamp"})
    return DataAvailableSensor(task_id="wait_for_data", spec=spec, **{"poke_interval": 5, "timeout": 600, **kwargs})


def test_a_deferrable_sensor_defers_to_the_probe_trigger(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    sensor = data_sensor(path, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context())
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout.total_seconds() == 600
    expected = arguments(path)
    assert deferred.value.trigger.serialize() == (
        "airflow_mlc.triggers.probe.ProbeTrigger",
        {"probe": "data_available", "arguments": expected, "poke_interval": 5.0},
    )


def test_a_deferrable_sensor_whose_condition_holds_does_not_defer(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    write_csv(hourly("2024-01-07", 30), path)
    detail = data_sensor(path, deferrable=True, window_start="2024-01-07T12:00:00Z").execute(context())
    assert detail["rows"] == 12 and detail["window"]["start"] == "2024-01-07T12:00:00+00:00"


def test_execute_complete_returns_the_detail_or_fails(tmp_path: Path) -> None:
    sensor = data_sensor(tmp_path / "data.csv", deferrable=True)
    assert sensor.execute_complete(context(), {"status": "success", "rows": 4, "min_rows": 2}) == {
        "rows": 4,
        "min_rows": 2,
    }
    with pytest.raises(AirflowException, match="failed in the triggerer: boom"):
        sensor.execute_complete(context(), {"status": "error", "message": "boom"})


def test_a_poking_sensor_returns_the_detail_or_times_out(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    with pytest.raises(AirflowSensorTimeout):
        data_sensor(path, timeout=0).execute(context())
    write_csv(hourly("2024-01-01", 5), path)
    sensor = data_sensor(path, min_rows=5, lookback_days=1)
    assert not sensor.poke(context())
    detail = data_sensor(path, min_rows=5).execute(context())
    assert detail["rows"] == 5 and detail["window"]["start"] == "2024-01-01T00:00:00+00:00"


def test_bad_input_fails_the_sensor_without_retries(tmp_path: Path) -> None:
    sensor = data_sensor(tmp_path / "data.csv", window_end="next tuesday")
    with pytest.raises(AirflowFailException, match="window_end 'next tuesday' is not an ISO 8601"):
        sensor.poke(context())
    with pytest.raises(AirflowFailException, match="window_end 'next tuesday'"):
        data_sensor(tmp_path / "data.csv", window_end="next tuesday", deferrable=True).execute(context())


def test_model_version_sensor(mlflow_store, logged_model) -> None:
    with pytest.raises(ValueError, match="needs a spec or a registered model name"):
        ModelVersionSensor(task_id="no_model")
    name = "sensed_sensor"
    sensor = ModelVersionSensor(task_id="wait", model=name, mlflow_conn_id=CONN_ID, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context())
    assert deferred.value.trigger.serialize()[1]["arguments"] == {
        "mlflow_conn_id": CONN_ID,
        "model": name,
        "alias": CHAMPION,
        "newer_than": None,
    }
    version = register(mlflow_store, logged_model, name)
    mlflow_store.activate().set_registered_model_alias(name, CHAMPION, version)
    assert sensor.execute(context()) == {"model": name, "alias": CHAMPION, "version": version, "newer_than": None}
    spec = make_spec({"path": "unused.csv"})
    from_spec = ModelVersionSensor(task_id="from_spec", spec=spec, alias=None, newer_than=version)
    assert from_spec.probe_arguments(context())["model"] == MODEL
    assert not from_spec.poke(context())


def test_drift_sensor(mlflow_store) -> None:
    spec = make_spec({"path": "unused.csv"}).model_copy(update={"name": "drift_sensed"})
    sensor = DriftSensor(task_id="wait_for_drift", spec=spec, since="2024-03-01", deferrable=True)
    assert sensor.probe_arguments(context()) == {
        "mlflow_conn_id": CONN_ID,
        "experiment_name": "mlc/drift_sensed/monitoring",
        "model": "drift_sensed",
        "since": "2024-03-01",
    }
    with pytest.raises(TaskDeferred):
        sensor.execute(context())
    run_id = monitoring_run(mlflow_store, "drift_sensed", "2024-03-08T00:00:00+00:00", drifted=True)
    detail = sensor.execute(context())
    assert detail["run_id"] == run_id and detail["drift_detected"] and detail["drifted_share"] == 0.75
