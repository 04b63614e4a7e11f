"""Faults injected into a real deployment: each must be recovered by Airflow's retries alone, nothing lost.

One deployment (PreloadingLocalExecutor) serves the whole module; its spec gives every task 3 retries, Airflow
retries after 3 s, and the prediction scores in small chunks so that a prediction run lasts long enough to be
hit. Each test injects one fault into a run, waits for the run, and checks what a fault could have broken: no
second MLflow run or model version for the DAG run, no half-written predictions file or table, no temporary
object left on S3, ``champion`` where the registry's decision put it. Each records a row (fault, injected,
recovered, tries, lost); the last test prints the table and writes it to ``<workdir>/faults.txt``.

"Stopped" for the S3 server means frozen (SIGSTOP, then SIGCONT): moto keeps its objects in memory, so a
stopped moto would lose every object, which is not a fault a real S3 has.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import DAG_IDS, FIRST_LOAD_END, SOURCE_TABLE, SPEC_NAME, Deployed, deployed_on
from tests.integration.rest import FINISHED, value
from tests.integration.stack import (
    ARTIFACT_BUCKET,
    admin_engine,
    s3_client,
    wait_for,
    wait_for_airflow,
    wait_for_mlflow,
)

pytestmark = pytest.mark.integration

#: Retries of every task, and Airflow's delay before a retry (seconds).
RETRIES, RETRY_DELAY = 3, 3
#: Rows a prediction scores at a time: small, so that a prediction of a few weeks takes seconds.
CHUNK_ROWS = 5
LOCK = f"{SPEC_NAME}.mlc-lock"
TABLE = "bike_predictions"


@dataclass
class Row:
    fault: str
    injected: bool = False
    recovered: bool = False
    tries: str = ""
    lost: str = ""
    #: Why a fault that was not recovered is not the provider's (printed under the table; not a failure).
    known: str = ""


ROWS: list[Row] = []


def faulty_spec(data: dict[str, Any]) -> None:
    data.setdefault("tasks", {})["default"] = {"retries": RETRIES}
    data["prediction"]["chunk_rows"] = CHUNK_ROWS


@pytest.fixture(scope="module", params=["PreloadingLocalExecutor"], ids=["faults"])
def deployed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    workdir = tmp_path_factory.mktemp("faults")
    env = {
        "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": str(RETRY_DELAY),
        # a task whose end was not recorded (its supervisor's report lost with the metadata DB) is failed, and
        # retried, after 30 s without a heartbeat rather than 5 minutes
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
    }
    with deployed_on(workdir, request.param, env, faulty_spec, load_until=None) as result:
        result.workdir = workdir  # type: ignore[attr-defined]
        result.api.fail_scheduled_runs(DAG_IDS["predict"])
        result.api.fail_scheduled_runs(DAG_IDS["monitor"])
        yield result


@contextlib.contextmanager
def recording(fault: str) -> Iterator[Row]:
    """A row of the table for ``fault``: recovered unless the block raises (the first line of the error is what
    was lost or what failed)."""
    row = Row(fault)
    ROWS.append(row)
    try:
        yield row
    except BaseException as exc:
        row.lost = row.lost or (str(exc).strip().splitlines() or [type(exc).__name__])[0][:90]
        raise
    row.recovered = True
    row.lost = row.lost or "nothing"


def running(api: Any, dag_id: str, run_id: str, task_id: str, timeout: float = 300) -> Any:
    """The task instance once it runs in a process (its pid known); fail if the run ends first."""

    def look() -> Any:
        if api.state(dag_id, run_id) in FINISHED:
            raise AssertionError(f"{dag_id} run {run_id} ended before {task_id} ran")
        ti = api.task_instances_of(dag_id, run_id).get(task_id)
        return ti if ti is not None and value(ti.state) == "running" and ti.pid else None

    return wait_for(look, timeout, f"{task_id} to run", interval=0.2)


def tries(api: Any, dag_id: str, run_id: str, task_id: str) -> int:
    return int(api.task_instances_of(dag_id, run_id)[task_id].try_number)


def training_runs(deployed: Deployed, run_id: str) -> list[Any]:
    client = deployed.mlflow()
    experiment = client.get_experiment_by_name(f"mlc/{SPEC_NAME}")
    found = client.search_runs(
        [experiment.experiment_id], f"tags.`mlc.run_id` = '{run_id}' and tags.`mlc.task_id` = 'train'"
    )
    return list(found)


def versions(deployed: Deployed) -> list[Any]:
    return sorted(deployed.mlflow().search_model_versions(f"name = '{SPEC_NAME}'"), key=lambda v: int(v.version))


def expected_champion(deployed: Deployed) -> str | None:
    """The newest version the registry's decision promoted (``mlc.promoted``), as ``champion`` should be."""
    promoted = [v for v in versions(deployed) if v.tags.get("mlc.promoted") == "true"]
    return str(promoted[-1].version) if promoted else None


def check_training(deployed: Deployed, run_id: str, before: int, row: Row) -> None:
    """One training MLflow run for the DAG run, one new model version, registered from it; champion as decided."""
    runs = training_runs(deployed, run_id)
    assert len(runs) == 1, f"{len(runs)} training runs for {run_id}"
    made = versions(deployed)
    new = made[before:]
    assert len(new) == 1, f"{len(new)} new model versions"
    assert new[0].run_id == runs[0].info.run_id
    champion = deployed.mlflow().get_model_version_by_alias(SPEC_NAME, "champion")
    assert str(champion.version) == expected_champion(deployed), "champion is not the last promoted version"
    assert not deployed.mlflow().search_registered_models(f"name = '{LOCK}'"), "the registry lock was left"


def source_rows(deployed: Deployed, start: str, end: str) -> int:
    sql = f"SELECT COUNT(*) FROM {SOURCE_TABLE} WHERE \"timestamp\" >= '{start}' AND \"timestamp\" < '{end}'"
    return int(deployed.query(sql)[0][0])


def check_predictions(deployed: Deployed, run_id: str, start: str, end: str, row: Row) -> None:
    """Wait for the predict run ``run_id`` to succeed and write its tries on ``row``; then: one prediction MLflow
    run; its file whole (every row of the window, once); the table's interval once; no temporary object on S3."""
    import pyarrow.parquet as pq

    api, dag = deployed.api, DAG_IDS["predict"]
    api.wait_for_run(dag, run_id)
    row.tries = f"predict: {tries(api, dag, run_id, 'predict')}"
    client = deployed.mlflow()
    experiment = client.get_experiment_by_name(f"mlc/{SPEC_NAME}/predictions")
    runs = client.search_runs([experiment.experiment_id], f"tags.`mlc.run_id` = '{run_id}'")
    assert len(runs) == 1, f"{len(runs)} prediction runs for {run_id}"
    uri = runs[0].data.tags["mlc.predictions_uri"]
    expected = source_rows(deployed, start, end)
    key = uri.removeprefix(f"s3://{ARTIFACT_BUCKET}/")
    body = s3_client(deployed.stack.s3_endpoint).get_object(Bucket=ARTIFACT_BUCKET, Key=key)["Body"].read()
    table = pq.read_table(io.BytesIO(body))
    assert table.num_rows == expected, f"the predictions file has {table.num_rows} rows, not {expected}"
    assert set(table.column("run_id").to_pylist()) == {run_id}
    assert len(set(table.column("timestamp").to_pylist())) == expected, "the predictions file repeats rows"
    counted = deployed.query(
        f'SELECT COUNT(*), COUNT(DISTINCT "timestamp") FROM {TABLE} '
        f"WHERE \"timestamp\" >= '{start}' AND \"timestamp\" < '{end}'"
    )[0]
    assert tuple(int(n) for n in counted) == (expected, expected), f"the table holds {counted} of {expected} rows"
    leftovers = [k for k in deployed.s3_keys(ARTIFACT_BUCKET) if "tmp" in k.lower() or "mlc-predictions-" in k]
    assert not leftovers, f"temporary objects left on S3: {leftovers}"


def predict(deployed: Deployed, start: str, end: str) -> str:
    return deployed.api.trigger(DAG_IDS["predict"], {"window_start": start, "window_end": end})


def signal_group(process: Any, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.popen.pid, sig)


# The faults, in order: two trainings, then four prediction runs over windows of their own. --------------------


def test_mlflow_server_stopped_mid_train_and_restarted(deployed: Deployed) -> None:
    api, dag = deployed.api, DAG_IDS["train"]
    mlflow = deployed.stack.servers["mlflow"]
    with recording("MLflow server stopped mid-train, restarted") as row:
        run_id = api.trigger(dag, {"window_end": FIRST_LOAD_END})
        running(api, dag, run_id, "train")
        mlflow.stop()
        row.injected = True
        time.sleep(5)
        mlflow.start()
        wait_for_mlflow(mlflow, deployed.stack.mlflow_url)
        api.wait_for_run(dag, run_id)
        row.tries = f"train: {tries(api, dag, run_id, 'train')}"
        check_training(deployed, run_id, 0, row)


def test_task_killed_while_holding_the_registry_lock(deployed: Deployed) -> None:
    api, dag = deployed.api, DAG_IDS["train"]
    url = deployed.stack.mlflow_url
    holder = (
        "import sys, time\n"
        "from mlflow import MlflowClient\n"
        "from airflow_mlc.core.registry import registry_lock\n"
        f"client = MlflowClient(tracking_uri={url!r}, registry_uri={url!r})\n"
        f"with registry_lock(client, {SPEC_NAME!r}, holder='a task about to be killed'):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(3600)\n"
    )
    with recording("task SIGKILLed holding the registry lock") as row:
        before = len(versions(deployed))
        process = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE)
        try:
            assert process.stdout is not None and process.stdout.readline().strip() == b"held"
            time.sleep(6)  # a heartbeat or more
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        row.injected = True
        assert deployed.mlflow().search_registered_models(f"name = '{LOCK}'"), "the killed holder left no lock"
        run_id = api.trigger(dag, {"window_end": "2011-05-15"})
        api.wait_for_run(dag, run_id)
        row.tries = f"register: {tries(api, dag, run_id, 'register')}"
        check_training(deployed, run_id, before, row)


def test_predict_task_killed_while_writing_predictions(deployed: Deployed) -> None:
    api, dag = deployed.api, DAG_IDS["predict"]
    start, end = "2011-05-16", "2011-06-20"
    with recording("predict task SIGKILLed writing predictions") as row:
        run_id = predict(deployed, start, end)
        ti = running(api, dag, run_id, "predict")
        temporary = f"mlc-predictions-*-{ti.pid}-*.parquet"

        def writing() -> list[Path] | None:
            """The task's temporary predictions file, once it writes one (it is S3's upload when done)."""
            if api.state(dag, run_id) in FINISHED:
                raise AssertionError("predict ended before it wrote")
            return list(Path(tempfile.gettempdir()).glob(temporary)) or None

        wait_for(writing, 120, "predict to write its predictions", interval=0.1)
        os.kill(int(ti.pid), signal.SIGKILL)
        row.injected = True
        check_predictions(deployed, run_id, start, end, row)
        assert tries(api, dag, run_id, "predict") >= 2, "the kill did not fail the try"
        # the killed try's local temporary file was removed by the retry (same machine)
        left = list(Path(tempfile.gettempdir()).glob(temporary))
        assert not left, f"the killed try's half-written temporary file was left: {left}"


def test_s3_server_frozen_mid_write(deployed: Deployed) -> None:
    api, dag = deployed.api, DAG_IDS["predict"]
    start, end = "2011-06-20", "2011-07-25"
    s3 = deployed.stack.servers["s3"]
    with recording("S3 server stopped (frozen) mid-write") as row:
        run_id = predict(deployed, start, end)
        running(api, dag, run_id, "predict")
        signal_group(s3, signal.SIGSTOP)
        try:
            row.injected = True
            time.sleep(10)
        finally:
            signal_group(s3, signal.SIGCONT)
        check_predictions(deployed, run_id, start, end, row)


def test_source_database_restarting_during_a_chunked_read(deployed: Deployed) -> None:
    import sqlalchemy

    api, dag = deployed.api, DAG_IDS["predict"]
    start, end = "2011-07-25", "2011-08-29"
    source = deployed.stack.source_url.rsplit("/", 1)[1]
    terminate = sqlalchemy.text(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = :name AND pid <> pg_backend_pid()"
    )
    with recording("source database restarting mid-read") as row:
        run_id = predict(deployed, start, end)
        running(api, dag, run_id, "predict")

        def cut() -> int | None:
            """Terminate the source database's connections as soon as predict has opened one (its chunked read)."""
            if api.state(dag, run_id) in FINISHED:
                raise AssertionError("predict ended before it read the source")
            with admin_engine().connect() as connection:
                return connection.execute(terminate, {"name": source}).scalar() or None

        row.injected = bool(wait_for(cut, 120, "a connection to the source database", interval=0.1))
        check_predictions(deployed, run_id, start, end, row)


def test_metadata_database_briefly_unreachable(deployed: Deployed) -> None:
    """Airflow's scheduler, DAG processor and triggerer exit when their database goes away (the API server
    stays): the first row says so. A deployment restarts them (docker/compose.yaml: ``restart: always``); the
    second row does what that policy does, and checks that the run then finishes with nothing lost."""
    import sqlalchemy

    api, dag = deployed.api, DAG_IDS["predict"]
    start, end = "2011-08-29", "2011-10-03"
    airflow, database = deployed.stack.airflow, deployed.stack.airflow_database
    row = Row("metadata database unreachable for 5 s")
    ROWS.append(row)
    run_id = predict(deployed, start, end)
    running(api, dag, run_id, "predict")
    with admin_engine().connect() as connection:
        connection.execute(sqlalchemy.text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false'))
        try:
            connection.execute(
                sqlalchemy.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": database},
            )
            row.injected = True
            time.sleep(5)
        finally:
            connection.execute(sqlalchemy.text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true'))

    # Watch as a supervisor would (docker/compose.yaml: ``restart: always``): a component that exits, now or
    # minutes later (the scheduler first waits for its running tasks), is started again at once.
    restarted: list[str] = []

    def supervise() -> bool:
        for process in airflow.processes:
            if process.popen is not None and process.popen.poll() is not None:
                restarted.append(process.name)
                process.start()
        return api.state(dag, run_id) in FINISHED

    wait_for(supervise, 600, f"{dag} run {run_id} under a supervisor")
    if not restarted:
        ROWS.remove(row)
        with recording(row.fault) as row:
            row.injected = True
            check_predictions(deployed, run_id, start, end, row)
        return
    row.lost = f"{', '.join(dict.fromkeys(restarted))} exited"
    row.known = "Airflow's components exit without their database"
    with recording("  then the exited components restarted (restart: always)") as again:
        again.injected = True
        wait_for_airflow(airflow)
        check_predictions(deployed, run_id, start, end, again)


def table() -> str:
    header = ("fault", "injected", "recovered", "tries", "lost")
    rows = [(r.fault, "yes" if r.injected else "no", "yes" if r.recovered else "NO", r.tries, r.lost) for r in ROWS]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [
        " | ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in (header, *rows)
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    tried, recovered = len(ROWS), sum(r.recovered for r in ROWS)
    lost = [r for r in ROWS if r.lost != "nothing"]
    lines.append(f"{tried} faults tried, {recovered} recovered, {len(lost)} with something lost or failed")
    lines += [f"not recovered: {r.fault.strip()}: {r.known}" for r in ROWS if r.known]
    return "\n".join(lines)


def test_every_fault_recovered_and_nothing_lost(deployed: Deployed, request: pytest.FixtureRequest) -> None:
    """Print the table (whatever pytest captures) and write it to ``<workdir>/faults.txt``; every fault but the
    known ones (``Row.known``) must be recovered with nothing lost."""
    text = table()
    Path(deployed.workdir, "faults.txt").write_text(text + "\n")  # type: ignore[attr-defined]
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(f"\n{text}\n", flush=True)
    assert ROWS and all(r.known or (r.recovered and r.lost == "nothing") for r in ROWS), text
