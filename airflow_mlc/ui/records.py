"""What the Models page reads from Airflow's metadata DB: the runs of a model's DAGs and their results.

Runs in the API server, which owns the metadata DB: one query for the runs, one for the XCom results
the page shows, one for the monitoring runs behind asset-triggered trainings, one for the paused flags.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from airflow_mlc.core.history import RunRecord

#: The XCom results the page reads: (task id, key) of each model DAG's tasks.
RESULTS = (
    ("drift", "return_value"),
    ("quality", "return_value"),
    ("request_retraining", "return_value"),
    ("request_retraining", "decision"),
    ("evaluate", "return_value"),
    ("register", "return_value"),
    ("predict", "return_value"),
    ("rollback", "return_value"),
)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def run_records(dag_ids: Sequence[str], newest: int | None = None) -> list[RunRecord]:
    """The runs of ``dag_ids`` (all, or the ``newest`` of each) with their results and what started them."""
    from airflow.models.asset import AssetEvent
    from airflow.models.asset import association_table as consumed_events
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    columns = (
        DagRun.id,
        DagRun.dag_id,
        DagRun.run_id,
        DagRun.run_type,
        DagRun.state,
        DagRun.logical_date,
        DagRun.start_date,
        DagRun.end_date,
        DagRun.triggering_user_name,
        DagRun.conf,
    )
    with create_session() as session:
        if newest is None:
            runs = list(session.execute(select(*columns).where(DagRun.dag_id.in_(dag_ids))))
        else:
            runs = [
                run
                for dag_id in dag_ids
                for run in session.execute(
                    select(*columns).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).limit(newest)
                )
            ]
        # All runs: filter by DAG, as the runs were; some runs: by their ids (a short list).
        of_runs = XComModel.dag_id.in_(dag_ids) if newest is None else XComModel.dag_run_id.in_([r.id for r in runs])
        tasks = {task for task, _ in RESULTS}
        keys = {key for _, key in RESULTS}
        xcoms: dict[int, dict[str, Any]] = {}
        for row in session.execute(
            select(XComModel.dag_run_id, XComModel.task_id, XComModel.key, XComModel.value).where(
                of_runs,
                XComModel.task_id.in_(tasks),
                XComModel.key.in_(keys),
                XComModel.map_index == -1,
            )
        ):
            if (row.task_id, row.key) not in RESULTS:
                continue
            name = row.task_id if row.key == "return_value" else f"{row.task_id}.{row.key}"
            xcoms.setdefault(row.dag_run_id, {})[name] = XComModel.deserialize_value(row)
        sources: dict[int, str | None] = dict(
            session.execute(
                select(consumed_events.c.dag_run_id, AssetEvent.source_run_id)
                .join(AssetEvent, AssetEvent.id == consumed_events.c.event_id)
                .where(consumed_events.c.dag_run_id.in_([run.id for run in runs]))
            ).all()
        )
    return [
        RunRecord(
            dag_id=run.dag_id,
            run_id=run.run_id,
            run_type=str(getattr(run.run_type, "value", run.run_type)),
            state=str(getattr(run.state, "value", run.state)),
            logical_date=_iso(run.logical_date),
            start_date=_iso(run.start_date),
            end_date=_iso(run.end_date),
            user=run.triggering_user_name,
            conf=run.conf if isinstance(run.conf, dict) else {},
            xcoms=xcoms.get(run.id, {}),
            source_run_id=sources.get(run.id),
        )
        for run in runs
    ]


def paused_flags(dag_ids: Sequence[str]) -> dict[str, bool | None]:
    """Whether each DAG is paused; None for a DAG the DAG processor has not seen."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(select(DagModel.dag_id, DagModel.is_paused).where(DagModel.dag_id.in_(dag_ids)))
        found = {dag_id: paused for dag_id, paused in rows}
    return {dag_id: found.get(dag_id) for dag_id in dag_ids}


def trigger_rollback(dag_id: str, version: str, reason: str, user: str) -> tuple[str, str]:
    """Trigger the rollback DAG as ``user``; returns the new run's (run id, state).

    Raises:
        LookupError: Airflow does not know the DAG (its DAG file was not parsed yet).
        ValueError: Airflow refused the run (its params, or a run of that id exists).
    """
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.exceptions import AirflowBadRequest, DagNotFound
    from airflow.utils.types import DagRunTriggeredByType

    try:
        run = trigger_dag(
            dag_id,
            triggered_by=DagRunTriggeredByType.UI,
            triggering_user_name=user,
            conf={"target_version": version, "reason": reason},
        )
    except DagNotFound as exc:
        raise LookupError(f"Airflow does not know the DAG {dag_id} yet: {exc}") from exc
    except (AirflowBadRequest, ValueError) as exc:  # ParamValidationError is a ValueError
        raise ValueError(f"Airflow refused a run of {dag_id}: {exc}") from exc
    if run is None:
        raise LookupError(f"Airflow does not know the DAG {dag_id} yet")
    return run.run_id, str(getattr(run.state, "value", run.state))


def run_state(dag_id: str, run_id: str) -> str | None:
    """The state of one DAG run, or None when it does not exist."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        state = session.scalar(select(DagRun.state).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    return str(getattr(state, "value", state)) if state is not None else None
