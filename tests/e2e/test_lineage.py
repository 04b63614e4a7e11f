"""OpenLineage events of whole runs through ``dag.test()``: what each task read and wrote (docs/lineage.md).

The provider's listener emits the events through a file transport, one JSON line per event. One training
run feeds every assertion: its tasks, then a prediction run from the file source, one from a SQL source
(a connection to a SQLite database) into a prediction table, and a monitoring run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_mlc.testing import run_dag, task_result, task_states
from tests.conftest import BIKES_CSV
from tests.e2e.test_training_dag import WINTER, bikes_data, make_spec

pytestmark = pytest.mark.e2e

QUERY = "SELECT * FROM bikes WHERE timestamp >= :window_start AND timestamp < :window_end"


@pytest.fixture
def lineage_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The OpenLineage listener, emitting to a file; yields a function reading the events emitted so far.

    The provider's plugin registers its listener only when a transport is configured as the plugins load, so
    the listener is registered here, on the task runner's listener manager, once the transport is set (the
    manager is made first: its plugins, loaded without a transport, add no listener of their own). Events are
    emitted from a thread of the task's process (``execute_in_thread``), not a fork of the test process.
    """
    pytest.importorskip("airflow.providers.openlineage")
    from airflow.providers.openlineage.plugins.listener import OpenLineageListener
    from airflow.sdk.listener import get_listener_manager

    manager = get_listener_manager()
    path = tmp_path / "openlineage.jsonl"
    transport = {"type": "file", "log_file_path": str(path), "append": True}
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", json.dumps(transport))
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD", "True")
    listener = OpenLineageListener()
    manager.add_listener(listener)

    def read() -> list[dict[str, Any]]:
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    try:
        yield read
    finally:
        manager.pm.unregister(listener)


def completed(events: list[dict[str, Any]], dag_run: Any) -> dict[str, dict[str, Any]]:
    """The COMPLETE event of each task of ``dag_run``, by task id; each task completes once."""
    found: dict[str, dict[str, Any]] = {}
    for event in events:
        run = event["run"]["facets"].get("airflow", {}).get("dagRun", {})
        if event["eventType"] == "COMPLETE" and run.get("run_id") == dag_run.run_id:
            task_id = event["job"]["name"].removeprefix(f"{dag_run.dag_id}.")
            assert task_id not in found, f"{task_id} completed twice"
            found[task_id] = event
    return found


def names(datasets: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in datasets]


def kind(dataset: dict[str, Any]) -> tuple[str, str | None]:
    facet = dataset["facets"]["datasetType"]
    return facet["datasetType"], facet.get("subType")


def test_each_task_reports_what_it_read_and_wrote(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lineage_events
) -> None:
    import pandas as pd
    import sqlalchemy

    from airflow_mlc.hooks.mlflow import MLflowHook

    bikes_db, predictions_db = tmp_path / "bikes.db", tmp_path / "predictions.db"
    engine = sqlalchemy.create_engine(f"sqlite:///{bikes_db}")
    pd.read_csv(BIKES_CSV).to_sql("bikes", engine, index=False)
    engine.dispose()
    for conn_id, database in (("MLC_BIKES_DB", bikes_db), ("MLC_PREDICTIONS", predictions_db)):
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id}", json.dumps({"conn_type": "sqlite", "host": str(database)}))
    # a quick model: the lineage, not the fit, is under test
    data = bikes_data(
        "bikes_lineage", model={"estimator": "sklearn.linear_model.Ridge"}, explanations={"importance": False}
    )
    data["prediction"] = {"window_days": 7, "table": "predictions", "conn_id": "mlc_predictions"}
    spec = make_spec(tmp_path, data)
    tracking = MLflowHook().get_conn().tracking_uri

    train = run_dag(spec.dag_ids["train"], conf=WINTER)
    assert str(train.state) == "success", task_states(train)
    events = completed(lineage_events(), train)
    assert set(events) == set(task_states(train))

    source = ("file", str(BIKES_CSV.resolve()))
    ingest = task_result(train, "ingest")
    snapshot = ("file", ingest["uri"])
    assert names(events["ingest"]["inputs"]) == [source]
    (written,) = events["ingest"]["outputs"]
    assert (written["namespace"], written["name"]) == snapshot and kind(written) == ("FILE", None)
    assert [f["name"] for f in written["facets"]["schema"]["fields"]] == ingest["columns"]
    assert written["outputFacets"]["outputStatistics"]["rowCount"] == ingest["rows"]
    assert written["facets"]["version"]["datasetVersion"] == ingest["fingerprint"]

    assert names(events["validate"]["inputs"]) == [snapshot]
    assert names(events["validate"]["outputs"]) == [("file", task_result(train, "validate")["report_uri"])]
    split = task_result(train, "prepare")
    sets = [("file", split["train_uri"]), ("file", split["test_uri"])]
    assert names(events["prepare"]["inputs"]) == [snapshot] and names(events["prepare"]["outputs"]) == sets
    assert [d["outputFacets"]["outputStatistics"]["rowCount"] for d in events["prepare"]["outputs"]] == [
        split["train_rows"],
        split["test_rows"],
    ]

    training = task_result(train, "train")
    run = (tracking, f"experiments/{training['experiment_id']}/runs/{training['run_id']}")
    assert names(events["train"]["inputs"]) == sets
    (logged,) = events["train"]["outputs"]
    assert (logged["namespace"], logged["name"]) == run and kind(logged) == ("JOB_OUTPUT", "MLFLOW_RUN")
    assert names(events["evaluate"]["inputs"]) == [sets[1], sets[0], run]  # no champion yet
    assert names(events["register"]["inputs"]) == [run]
    (registered,) = events["register"]["outputs"]
    version = (tracking, "models/bikes_lineage/versions/1")
    assert (registered["namespace"], registered["name"]) == version
    assert kind(registered) == ("MODEL", "MLFLOW_MODEL_VERSION")

    predict = run_dag(spec.dag_ids["predict"], conf={"window_end": "2011-04-08"})
    assert str(predict.state) == "success", task_states(predict)
    served = task_result(predict, "predict")
    event = completed(lineage_events(), predict)["predict"]
    assert names(event["inputs"]) == [source, version] and kind(event["inputs"][1])[0] == "MODEL"
    table = (f"sqlite://{predictions_db}", "predictions")
    assert names(event["outputs"]) == [("file", served["uri"]), table]
    assert kind(event["outputs"][1]) == ("TABLE", None)
    assert {d["outputFacets"]["outputStatistics"]["rowCount"] for d in event["outputs"]} == {served["rows"]}
    assert "sql" not in event["job"]["facets"]

    # the same week from a SQL source: the table the query reads, and the query
    make_spec(tmp_path, {**data, "source": {"sql": QUERY, "conn_id": "mlc_bikes_db", "time_column": "timestamp"}})
    from_sql = run_dag(spec.dag_ids["predict"], conf={"window_end": "2011-04-08"})
    assert str(from_sql.state) == "success", task_states(from_sql)
    event = completed(lineage_events(), from_sql)["predict"]
    assert names(event["inputs"]) == [(f"sqlite://{bikes_db}", "bikes"), version]
    assert event["job"]["facets"]["sql"]["query"] == QUERY
    assert names(event["outputs"]) == [("file", served["uri"]), table]

    make_spec(tmp_path, data)
    monitor = run_dag(spec.dag_ids["monitor"], conf={"window_end": "2011-04-01"})
    assert task_states(monitor)["drift"] == "success", task_states(monitor)
    events = completed(lineage_events(), monitor)
    drift, current = task_result(monitor, "drift"), task_result(monitor, "ingest")
    assert names(events["drift"]["inputs"]) == [("file", current["uri"]), ("file", drift["reference_uri"])]
    assert drift["reference_uri"] == split["train_uri"]  # the champion's training data
    assert names(events["drift"]["outputs"]) == [("file", drift["report_uri"])]
    assert names(events["quality"]["inputs"]) == [("file", current["uri"]), version]
