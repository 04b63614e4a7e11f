"""Local runs of the template DAGs through ``dag.test()``, for tests, demos and debugging.

``run_dag`` runs one DAG of a DAG folder in-process with the real task runner, against the metadata
DB of ``$AIRFLOW_HOME`` (migrated beforehand). With ``triggering_events`` the run consumes those
asset events as a run the scheduler starts from an asset would, so a retraining DAG can be tried on
the event a monitoring run emitted without starting a scheduler. Not for production use.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any


def asset_event_ids(uri: str, source_dag_id: str | None = None, source_run_id: str | None = None) -> list[int]:
    """Ids of the events of asset ``uri`` in the metadata DB, oldest first, optionally of one source run."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    query = select(AssetEvent.id).join(AssetModel, AssetEvent.asset_id == AssetModel.id).where(AssetModel.uri == uri)
    if source_dag_id:
        query = query.where(AssetEvent.source_dag_id == source_dag_id)
    if source_run_id:
        query = query.where(AssetEvent.source_run_id == source_run_id)
    with create_session() as session:
        return list(session.scalars(query.order_by(AssetEvent.timestamp)))


@contextmanager
def _runs_consume(event_ids: list[int]) -> Iterator[None]:
    """While active, the run ``dag.test()`` creates is an asset-triggered run consuming ``event_ids``."""
    from airflow.models import dagrun
    from airflow.models.asset import AssetEvent
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    original = dagrun.get_or_create_dagrun

    def create(**kwargs: Any) -> Any:
        run = original(**kwargs)
        session = kwargs["session"]
        run.run_type = DagRunType.ASSET_TRIGGERED
        run.triggered_by = DagRunTriggeredByType.ASSET
        run.consumed_asset_events.extend(session.get(AssetEvent, event_id) for event_id in event_ids)
        session.commit()
        return run

    dagrun.get_or_create_dagrun = create
    try:
        yield
    finally:
        dagrun.get_or_create_dagrun = original


def run_dag(
    dag_id: str,
    dags_folder: str | os.PathLike[str] | None = None,
    conf: dict[str, Any] | None = None,
    logical_date: datetime | None = None,
    triggering_events: list[int] | None = None,
) -> Any:
    """Run ``dag_id`` from ``dags_folder`` (default: Airflow's dags folder) once; returns the finished DagRun."""
    from airflow.configuration import conf as airflow_conf
    from airflow.dag_processing.dagbag import DagBag

    folder = str(dags_folder or airflow_conf.get("core", "dags_folder"))
    bag = DagBag(dag_folder=folder)
    if bag.import_errors:
        raise RuntimeError(f"the DAG folder {folder} has import errors: {bag.import_errors}")
    dag = bag.dags[dag_id]
    arguments: dict[str, Any] = {"run_conf": conf or {}}
    if logical_date is not None:
        arguments["logical_date"] = logical_date
    if triggering_events is None:
        return dag.test(**arguments)
    with _runs_consume(triggering_events):
        return dag.test(**arguments)


def task_states(dag_run: Any) -> dict[str, str]:
    """The state of every task of a finished run, by task id."""
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id).all()
        return {ti.task_id: str(ti.state) for ti in tis}


def task_result(dag_run: Any, task_id: str) -> Any:
    """The return value (XCom) of one task of a finished run."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id, key="return_value")
            .one_or_none()
        )
        return XComModel.deserialize_value(row) if row is not None else None
