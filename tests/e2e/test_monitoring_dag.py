"""The monitoring loop through ``dag.test()``: drift reports, the retraining event, the triggered retraining."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_mlc.testing import asset_event_ids, run_dag, task_result, task_states
from tests.e2e.test_training_dag import WINTER, bikes_data, champion_version, make_spec, registry

pytestmark = pytest.mark.e2e


def monitor(spec, end: str, **conf):
    return run_dag(f"mlc_{spec.name}_monitor", conf={"window_end": end, **conf})


def test_drift_triggers_a_retraining_that_takes_champion_only_when_better(airflow_db: Path, tmp_path: Path) -> None:
    from airflow_mlc.core import tracking
    from airflow_mlc.core.registry import champion_history

    spec = make_spec(tmp_path, bikes_data("bikes_loop"))
    assert str(run_dag(f"mlc_{spec.name}_train", conf=WINTER).state) == "success"
    client = registry()
    assert champion_version(client, spec.name) == "1"

    # a winter window: a report, no drift, no event
    calm = monitor(spec, "2011-04-01")
    assert task_states(calm) == {
        "wait_for_data": "success",
        "ingest": "success",
        "drift": "success",
        "quality": "success",
        "request_retraining": "skipped",
    }
    drift = task_result(calm, "drift")
    assert drift["drift_detected"] is False and drift["drifted_columns"] == {}
    assert Path(drift["report_uri"]).stat().st_size > 0 and Path(drift["report_uri"]).with_suffix(".json").exists()
    assert drift["window"] == {"start": "2011-03-04T00:00:00+00:00", "end": "2011-04-01T00:00:00+00:00"}
    assert drift["champion_version"] == "1"
    quality = task_result(calm, "quality")
    assert quality["labelled_rows"] == drift["current_rows"] and quality["degraded"] is False
    assert asset_event_ids(spec.retrain_asset_uri) == []
    monitoring_run = client.get_run(drift["monitoring_run_id"])
    assert monitoring_run.info.run_name == "monitor 2011-04-01"
    assert monitoring_run.data.tags[tracking.TAG_DRIFT_DETECTED] == "false"
    assert monitoring_run.data.tags[tracking.TAG_RETRAIN_REQUESTED] == "false"
    assert {a.path for a in client.list_artifacts(monitoring_run.info.run_id)} == {"drift", "quality"}

    # spring: the temperature drifted, the event carries the report
    spring = monitor(spec, "2011-05-15")
    assert task_states(spring)["request_retraining"] == "success"
    events = asset_event_ids(spec.retrain_asset_uri, source_run_id=spring.run_id)
    assert len(events) == 1
    extra = task_result(spring, "request_retraining")
    assert extra["drift_detected"] is True and set(extra["drifted_columns"]) == {"temp", "atemp"}
    assert extra["window"]["end"] == "2011-05-15T00:00:00+00:00"
    assert Path(extra["report_uri"]).exists() and extra["drifted_share"] == 0.5
    assert event_extra(events[0]) == extra

    # the same window again is not a second request, unless forced
    assert task_states(monitor(spec, "2011-05-15"))["request_retraining"] == "skipped"
    assert task_states(monitor(spec, "2011-05-20"))["request_retraining"] == "skipped"  # inside the cooldown
    forced = monitor(spec, "2011-05-15", force_retrain=True)
    assert task_states(forced)["request_retraining"] == "success"

    # the retraining fed that event: a spring challenger beats the winter champion on spring rows
    retrain = run_dag(f"mlc_{spec.name}_train", triggering_events=events)
    assert str(retrain.state) == "success"
    evaluation = task_result(retrain, "evaluate")
    assert evaluation["scored_on"].startswith(f"the {evaluation['scored_rows']} test rows newer than the champion's")
    decision = task_result(retrain, "register")
    assert decision["promoted"] is True and decision["previous_champion"] == "1"
    version = client.get_model_version(spec.name, decision["version"])
    triggered_by = json.loads(version.tags[tracking.TAG_TRIGGERED_BY])
    assert triggered_by["source_run_id"] == spring.run_id and triggered_by["report_uri"] == extra["report_uri"]
    assert float(version.tags["mlc.score"]) < float(version.tags["mlc.champion_score"])
    assert version.tags["mlc.window_end"] == "2011-05-15T00:00:00+00:00"

    # a worse challenger, fed the forced event, stays challenger
    make_spec(tmp_path, bikes_data("bikes_loop", model={"estimator": "sklearn.dummy.DummyRegressor"}))
    worse = run_dag(
        f"mlc_{spec.name}_train", triggering_events=asset_event_ids(spec.retrain_asset_uri, source_run_id=forced.run_id)
    )
    decision = task_result(worse, "register")
    assert decision["promoted"] is False and champion_version(client, spec.name) == "2"
    assert str(client.get_model_version_by_alias(spec.name, "challenger").version) == decision["version"]
    assert (
        "does not beat the champion"
        in client.get_model_version(spec.name, decision["version"]).tags["mlc.promotion_reason"]
    )

    # rollback through its DAG: champion back to version 1, and the history shows every move
    rolled = run_dag(f"mlc_{spec.name}_rollback", conf={"reason": "spring model misbehaves"})
    assert str(rolled.state) == "success" and champion_version(client, spec.name) == "1"
    history = champion_history(client, spec.registry_experiment_name, spec.name)
    assert [(m.kind, m.from_version, m.to_version) for m in history] == [
        ("promotion", None, "1"),
        ("promotion", "1", "2"),
        ("rollback", "2", "1"),
    ]
    assert history[-1].reason == "spring model misbehaves" and history[-1].run_id == rolled.run_id
    spring_model = client.get_model_version(spec.name, "2").description
    assert "\n\nPromoted to champion: rmse " in spring_model and " vs champion v1 " in spring_model
    assert spring_model.endswith(", to v1: spring model misbehaves.")

    # the whole decision history: decisions, moves and the two retraining requests, in time order
    from airflow_mlc.core.audit import decision_history

    audit = decision_history(client, spec)
    assert [(e.kind, e.version, e.outcome) for e in audit if e.kind != "retraining_request"] == [
        ("decision", "1", "promoted"),
        ("promotion", "1", "first champion"),
        ("decision", "2", "promoted"),
        ("promotion", "2", "champion v1 -> v2"),
        ("decision", "3", "rejected"),
        ("rollback", "1", "champion v2 -> v1"),
    ]
    requests = [e for e in audit if e.kind == "retraining_request"]
    assert [e.run_id for e in requests] == [spring.run_id, forced.run_id]
    assert all(e.version == "1" and e.details["mlc.window_end"].startswith("2011-05-15") for e in requests)
    assert "data drift" in requests[0].reason and [e.at for e in audit] == sorted(e.at for e in audit)


def event_extra(event_id: int) -> dict:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        return dict(session.get(AssetEvent, event_id).extra)


def test_a_controlled_shift_against_a_fixed_reference(airflow_db: Path, tmp_path: Path, bikes) -> None:
    """No training needed: the spec names its reference. Only the shifted column drifts."""
    import pandas as pd

    bikes["timestamp"] = pd.to_datetime(bikes["timestamp"])
    february = bikes[(bikes.timestamp >= "2011-02-01") & (bikes.timestamp < "2011-03-01")]
    reference = tmp_path / "reference.parquet"
    february.to_parquet(reference)
    april = february.assign(timestamp=february.timestamp + pd.Timedelta(days=59))  # 2011-04-01 .. 2011-04-29
    source = tmp_path / "shifted.csv"
    pd.concat([february, april.assign(windspeed=april.windspeed + 0.3)]).to_csv(source, index=False)
    data = bikes_data("shifted")
    data["source"]["path"] = str(source)
    data["monitoring"] = {"window_days": 28, "drift": {"columns": ["temp", "windspeed"], "reference": str(reference)}}
    spec = make_spec(tmp_path, data)

    run = monitor(spec, "2011-04-29")
    assert task_states(run)["request_retraining"] == "success"
    extra = task_result(run, "request_retraining")
    assert extra["drifted_columns"].keys() == {"windspeed"} and extra["champion_version"] is None
    assert task_result(run, "quality")["labelled_rows"] == 0  # no champion to score


def test_no_champion_and_no_reference_skips_the_check(airflow_db: Path, tmp_path: Path) -> None:
    spec = make_spec(tmp_path, bikes_data("unmonitored"))
    states = task_states(monitor(spec, "2011-04-01"))
    assert states["drift"] == "skipped" and states["request_retraining"] == "skipped"


def test_the_data_sensor_defers_until_the_window_s_data_arrives(
    airflow_db: Path, tmp_path: Path, bikes, capfd: pytest.CaptureFixture[str]
) -> None:
    """The source file appears only once the sensor has deferred: the trigger (run in line) sees it."""
    import threading

    source = tmp_path / "late.csv"
    data = bikes_data("late")
    data["source"]["path"] = str(source)
    reference = tmp_path / "reference.csv"
    bikes.to_csv(reference, index=False)
    data["monitoring"] = {
        "window_days": 28,
        "min_rows": 500,
        "drift": {"reference": str(reference)},
        "wait": {"poke_interval_seconds": 0.5, "timeout_hours": 0.05},
    }
    spec = make_spec(tmp_path, data)
    output: list[str] = []
    arrival = threading.Thread(target=write_once_deferred, args=(capfd, output, bikes, source), daemon=True)
    arrival.start()
    run = monitor(spec, "2011-04-01")
    arrival.join(timeout=5)

    assert source.exists(), "the sensor never deferred"  # the file is written only once it has
    assert task_states(run)["drift"] == "success"
    waited = task_result(run, "wait_for_data")
    assert waited["rows"] >= 500 and waited["window"]["end"] == "2011-04-01T00:00:00+00:00"


def write_once_deferred(capfd: pytest.CaptureFixture[str], output: list[str], frame, path: Path) -> None:
    """Write ``frame`` to ``path`` once the run's log says the sensor deferred (the log is kept in ``output``)."""
    import time

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        captured = capfd.readouterr()
        output.append(captured.out + captured.err)
        if "Pausing task as DEFERRED" in "".join(output):
            partial = path.with_suffix(".partial")  # the file lands whole, as a finished upload does
            frame.to_csv(partial, index=False)
            partial.rename(path)
            return
        time.sleep(0.2)
