"""Airflow's REST API through its official Python client, signed in with a JWT from ``/auth/token``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import airflow_client.client as airflow_client
import requests
from airflow_client.client.api import (
    asset_api,
    connection_api,
    dag_api,
    dag_run_api,
    import_error_api,
    task_instance_api,
)
from airflow_client.client.exceptions import NotFoundException
from airflow_client.client.models import ConnectionBody, DAGPatchBody, DAGRunPatchBody, TriggerDAGRunPostBody

FINISHED = {"success", "failed"}
#: Seconds between two looks at a run or a task: a look is one cheap API call, and a run that ends is seen
#: within this delay (each test waits for a dozen runs and tasks).
POLL = 1.0


class AirflowApi:
    """What the tests do through the API server: connections, DAGs, runs, task instances, asset events."""

    def __init__(self, url: str, username: str, password: str, diagnostics: Callable[[], str] = lambda: "") -> None:
        response = requests.post(f"{url}/auth/token", json={"username": username, "password": password}, timeout=30)
        response.raise_for_status()
        config = airflow_client.Configuration(host=url, access_token=response.json()["access_token"])
        client = airflow_client.ApiClient(config)
        self.connections = connection_api.ConnectionApi(client)
        self.dags = dag_api.DAGApi(client)
        self.dag_runs = dag_run_api.DagRunApi(client)
        self.task_instances = task_instance_api.TaskInstanceApi(client)
        self.assets = asset_api.AssetApi(client)
        self.import_errors = import_error_api.ImportErrorApi(client)
        self.diagnostics = diagnostics

    def add_connection(self, connection_id: str, conn_type: str, **fields: Any) -> None:
        self.connections.post_connection(
            ConnectionBody.from_dict({"connection_id": connection_id, "conn_type": conn_type, **fields})
        )

    def wait_for_dags(self, dag_ids: list[str], timeout: float = 180) -> None:
        """Wait until the DAG processor has parsed every DAG; fail at once on an import error."""
        deadline = time.monotonic() + timeout
        while True:
            errors = self.import_errors.get_import_errors().import_errors
            if errors:
                raise AssertionError(f"the DAG files do not import: {[e.stack_trace for e in errors]}")
            missing = [dag_id for dag_id in dag_ids if not self._exists(dag_id)]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"DAGs never parsed: {missing}")
            time.sleep(POLL)

    def _exists(self, dag_id: str) -> bool:
        try:
            self.dags.get_dag(dag_id)
        except NotFoundException:
            return False
        return True

    def unpause(self, dag_id: str) -> None:
        self.dags.patch_dag(dag_id, DAGPatchBody(is_paused=False))

    def fail_scheduled_runs(self, dag_id: str) -> None:
        """Mark the DAG's unfinished scheduled runs failed.

        A ``@daily`` DAG gets a run for today's tick when it is unpaused shortly after midnight UTC, or after a
        backfill. Its sensor would wait hours for today's data and hold the DAG's one active-run slot.
        """
        for run in self.runs(dag_id, "scheduled"):
            if value(run.state) not in FINISHED:
                self.dag_runs.patch_dag_run(dag_id, run.dag_run_id, DAGRunPatchBody(state="failed"))

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        run = self.dag_runs.trigger_dag_run(dag_id, TriggerDAGRunPostBody(logical_date=None, conf=conf))
        return str(run.dag_run_id)

    def state(self, dag_id: str, run_id: str) -> str:
        return value(self.dag_runs.get_dag_run(dag_id, run_id).state)

    def runs(self, dag_id: str, run_type: str | None = None) -> list[Any]:
        runs = self.dag_runs.get_dag_runs(dag_id, run_type=[run_type] if run_type else None).dag_runs
        return sorted(runs, key=lambda run: run.dag_run_id)

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        instances = self.task_instances.get_task_instances(dag_id, run_id).task_instances
        return {ti.task_id: value(ti.state) for ti in instances}

    def task_instances_of(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """The run's task instances by task id (state, queue, hostname, pool, ...)."""
        instances = self.task_instances.get_task_instances(dag_id, run_id).task_instances
        return {ti.task_id: ti for ti in instances}

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 600) -> dict[str, str]:
        """Wait until the run finishes; return its task states, or fail with them and the task logs."""
        deadline = time.monotonic() + timeout
        while (state := self.state(dag_id, run_id)) not in FINISHED:
            if time.monotonic() > deadline:
                break
            time.sleep(POLL)
        states = self.task_states(dag_id, run_id)
        if state != "success":
            raise AssertionError(f"{dag_id} run {run_id} ended {state}: {states}\n{self.diagnostics()}")
        return states

    def wait_for_task_state(self, dag_id: str, run_id: str, task_id: str, wanted: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while (state := self.task_states(dag_id, run_id).get(task_id)) != wanted:
            if state in {"failed", "upstream_failed"} or time.monotonic() > deadline:
                raise AssertionError(f"{dag_id}.{task_id} is {state}, not {wanted}\n{self.diagnostics()}")
            time.sleep(POLL)

    def asset_events(self, source_dag_id: str) -> list[Any]:
        return list(self.assets.get_asset_events(source_dag_id=source_dag_id).asset_events)


def value(state: Any) -> str:
    """A state enum of the client as its plain string (``None`` as 'none')."""
    return str(getattr(state, "value", state)).lower()
