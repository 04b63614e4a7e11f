"""The life cycle in a real deployment, driven through Airflow's REST API and CLI, once per executor.

The tests of this module run in order on one deployment (see ``conftest.deployed``): train (its train task on a
queue of its own), monitor with a deferred sensor whose retraining request starts the training DAG by itself,
backfill the monitor, predict.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import DAG_IDS, FIRST_LOAD_END, SPEC_NAME, Deployed
from tests.integration.rest import value
from tests.integration.stack import ARTIFACT_BUCKET, HEAVY_WORKER, MLFLOW_BUCKET, wait_for

pytestmark = pytest.mark.integration

ARTIFACT_PREFIX = f"mlc/{SPEC_NAME}/"
BACKFILL_DAYS = ["2011-03-20", "2011-03-21", "2011-03-22"]
#: What airflow_mlc.core.preload logs in the process that forks the task processes: the scheduler with the
#: PreloadingLocalExecutor, the Celery worker with airflow_mlc.executors.celery_config.
PRELOADED = "preloaded the phases' libraries"


def test_training_dag_succeeds_with_nothing_on_local_disk(deployed: Deployed) -> None:
    api = deployed.api
    run_id = api.trigger(DAG_IDS["train"], {"window_end": FIRST_LOAD_END})

    states = api.wait_for_run(DAG_IDS["train"], run_id)

    assert set(states.values()) == {"success"}, states
    champion = deployed.mlflow().get_model_version_by_alias(SPEC_NAME, "champion")
    assert champion.version == "1"
    assert champion.tags["mlc.run_id"] == run_id
    snapshot = champion.tags["mlc.train_data_uri"]
    assert snapshot.startswith(f"s3://{ARTIFACT_BUCKET}/{ARTIFACT_PREFIX}")
    assert snapshot.removeprefix(f"s3://{ARTIFACT_BUCKET}/") in deployed.s3_keys(ARTIFACT_BUCKET)
    model_files = deployed.s3_keys(MLFLOW_BUCKET, "artifacts/")
    assert any(key.endswith("/MLmodel") for key in model_files), model_files
    for process in deployed.stack.airflow.processes:  # logs only: data, models and reports went to the servers
        home = Path(process.env["AIRFLOW_HOME"])
        assert not (home / "mlflow").exists() and not (home / "mlc").exists()
    # The tasks ran in processes forked from one that had loaded the phases' libraries (docs/deployment.md).
    preloaded = {p.name for p in deployed.stack.airflow.processes if PRELOADED in p.log.read_text(errors="replace")}
    assert preloaded in ({"scheduler"}, {"worker", HEAVY_WORKER}), preloaded


def ran_in(deployed: Deployed, dag_id: str, run_id: str) -> dict[str, set[str]]:
    """Per task of a run, the processes whose Airflow home holds its log: where the task process ran."""
    homes: dict[Path, set[str]] = {}
    for process in deployed.stack.airflow.processes:
        homes.setdefault(Path(process.env["AIRFLOW_HOME"]), set()).add(process.name)
    found: dict[str, set[str]] = {}
    for home, names in homes.items():
        for log in (home / "logs" / f"dag_id={dag_id}").glob("*/task_id=*/*.log"):
            if log.parent.parent.name == f"run_id={run_id}":
                found.setdefault(log.parent.name.removeprefix("task_id="), set()).update(names)
    return found


def test_the_train_task_runs_on_its_own_queue_and_the_others_on_the_default_one(deployed: Deployed) -> None:
    """The spec's ``tasks.train.queue``: on Celery, only the heavy worker runs the train task, and it runs nothing
    else; the LocalExecutor runs it like every other task, whatever its queue."""
    stack, api = deployed.stack, deployed.api
    run_id = api.runs(DAG_IDS["train"], "manual")[0].dag_run_id  # the run of the first test

    instances = api.task_instances_of(DAG_IDS["train"], run_id)
    where = ran_in(deployed, DAG_IDS["train"], run_id)

    queues = {task_id: ti.queue for task_id, ti in instances.items()}
    others = sorted(set(instances) - {"train"})
    assert queues == {"train": stack.heavy_queue, **dict.fromkeys(others, stack.queue)}, queues
    assert {value(ti.state) for ti in instances.values()} == {"success"}
    assert set(where) == set(instances), where
    if {p.name for p in stack.airflow.processes} >= {"worker", HEAVY_WORKER}:  # CeleryExecutor
        assert where == {"train": {HEAVY_WORKER}, **dict.fromkeys(others, {"worker"})}, where
    else:  # LocalExecutor: every task is a child of the scheduler, the train task too
        assert all("scheduler" in names for names in where.values()), where


def test_drift_event_from_a_deferred_monitor_starts_training(deployed: Deployed) -> None:
    api = deployed.api
    api.fail_scheduled_runs(DAG_IDS["monitor"])
    run_id = api.trigger(DAG_IDS["monitor"], {"window_end": "2011-05-15"})

    # The window's rows are not in the table yet: the sensor hands its wait to the triggerer.
    api.wait_for_task_state(DAG_IDS["monitor"], run_id, "wait_for_data", "deferred")
    assert deployed.load_rows(since=FIRST_LOAD_END) > 0
    states = api.wait_for_run(DAG_IDS["monitor"], run_id)

    assert states["request_retraining"] == "success"
    events = [e for e in api.asset_events(DAG_IDS["monitor"]) if e.source_run_id == run_id]
    assert len(events) == 1
    assert events[0].extra["reason"].startswith("data drift")
    triggered = wait_for(lambda: api.runs(DAG_IDS["train"], "asset_triggered"), 120, "the asset-triggered run")
    assert len(triggered) == 1
    api.wait_for_run(DAG_IDS["train"], triggered[0].dag_run_id)
    newest = deployed.mlflow().get_model_version(SPEC_NAME, "2")
    assert run_id in newest.tags["mlc.triggered_by"]
    assert newest.tags["mlc.run_id"] == triggered[0].dag_run_id


def test_backfill_of_the_monitor_writes_one_report_per_day(deployed: Deployed) -> None:
    from airflow_mlc.core.tracking import monitoring_runs

    api = deployed.api
    deployed.stack.airflow.cli(
        "backfill",
        "create",
        "--dag-id",
        DAG_IDS["monitor"],
        "--from-date",
        BACKFILL_DAYS[0],
        "--to-date",
        BACKFILL_DAYS[-1],
    )

    runs = wait_for(
        lambda: (found := api.runs(DAG_IDS["monitor"], "backfill")) and len(found) == len(BACKFILL_DAYS) and found,
        60,
        "the backfill runs",
    )
    for run in runs:
        api.wait_for_run(DAG_IDS["monitor"], run.dag_run_id)

    backfill_ids = {run.dag_run_id for run in runs}
    reports = {
        run.data.tags["mlc.run_id"]: run.data.tags
        for run in monitoring_runs(deployed.mlflow(), f"mlc/{SPEC_NAME}/monitoring", SPEC_NAME)
        if run.data.tags["mlc.run_id"] in backfill_ids
    }
    assert sorted(tags["mlc.window_end"][:10] for tags in reports.values()) == BACKFILL_DAYS
    uris = {tags["mlc.drift_report_uri"] for tags in reports.values()}
    assert len(uris) == len(BACKFILL_DAYS)  # one report per day, none written over another
    keys = deployed.s3_keys(ARTIFACT_BUCKET, ARTIFACT_PREFIX)
    for uri in uris:
        assert uri.removeprefix(f"s3://{ARTIFACT_BUCKET}/") in keys
        assert uri.removesuffix(".html") + ".json" in {f"s3://{ARTIFACT_BUCKET}/{key}" for key in keys}


def test_batch_predictions_land_in_postgres_and_s3(deployed: Deployed) -> None:
    api = deployed.api
    api.fail_scheduled_runs(DAG_IDS["predict"])
    run_id = api.trigger(DAG_IDS["predict"], {"window_end": "2011-05-16"})

    api.wait_for_run(DAG_IDS["predict"], run_id)

    rows = deployed.query("SELECT model_version, COUNT(*) FROM bike_predictions GROUP BY model_version")
    assert rows == [("2", 24)] or rows == [(2, 24)], rows
    partitions = [k for k in deployed.s3_keys(ARTIFACT_BUCKET, ARTIFACT_PREFIX) if k.endswith("predictions.parquet")]
    assert len(partitions) == 1 and "interval=2011-05-16" in partitions[0], partitions
