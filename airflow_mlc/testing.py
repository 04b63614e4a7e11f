"""Local runs of the template DAGs through ``dag.test()``, for tests, demos and debugging.

``run_dag`` runs one DAG of a DAG folder in-process with the real task runner, against the metadata
DB of ``$AIRFLOW_HOME`` (migrated beforehand). With ``triggering_events`` the run consumes those
asset events as a run the scheduler starts from an asset would, so a retraining DAG can be tried on
the event a monitoring run emitted without starting a scheduler. Each task's log is also written to
the file the Airflow UI reads (``dag.test()`` alone only logs to the console). Not for production use.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

# Records of the in-process execution API, which serves the task: the API server's log, not the task's.
_SERVER_LOGGERS = ("airflow.api_fastapi",)


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


def task_log_path(ti: Any) -> Path:
    """The log file of a task instance's current try, where the API server reads it (created if missing)."""
    from airflow.configuration import conf
    from airflow.sdk.log import init_log_file
    from airflow.utils.log.file_task_handler import FileTaskHandler

    relative = FileTaskHandler(conf.get("logging", "base_log_folder"))._render_filename(ti, ti.try_number)
    return init_log_file(relative)


class _TaskLogTee:
    """Copies the log events of the task running in this process to its log file, as JSON lines.

    That is the format of the files the task runner's supervisor writes, so the UI shows levels, loggers
    and tracebacks as it does for a scheduled run. Structlog events are copied by a processor placed
    before the console renderer, stdlib records by a handler on the root logger.
    """

    def __init__(self) -> None:
        import logging

        import structlog

        self.out: TextIO | None = None
        self._exceptions = structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        )
        self._handler = logging.Handler()
        self._handler.emit = self._emit  # type: ignore[method-assign]

    def __call__(self, logger: Any, method_name: str, event_dict: Any) -> Any:
        """The structlog processor: writes a copy of the event and passes the event on unchanged."""
        self.write(dict(event_dict))
        return event_dict

    def _emit(self, record: Any) -> None:
        from datetime import timezone

        event = {
            "timestamp": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            "logger": record.name,
        }
        if record.exc_info:
            event["exc_info"] = record.exc_info
        self.write(event)

    def write(self, event: dict[str, Any]) -> None:
        if self.out is None or str(event.get("logger", "")).startswith(_SERVER_LOGGERS):
            return
        try:
            rendered = dict(self._exceptions(None, "", event))
            if "exception" in rendered:
                rendered["error_detail"] = rendered.pop("exception")
            line = {"timestamp": rendered.pop("timestamp", None), "level": rendered.pop("level", "info"), **rendered}
            line["event"] = str(line.get("event", ""))
            self.out.write(json.dumps(line, default=str) + "\n")
            self.out.flush()
        except Exception:  # a log line that cannot be copied must not fail the task
            pass

    @contextmanager
    def to(self, path: Path) -> Iterator[None]:
        """While active, events go to ``path`` (appended, as a resumed task's log is)."""
        import logging

        import structlog

        processors = structlog.get_config()["processors"]
        processors.insert(len(processors) - 1, self)  # in place: loggers cached on first use hold this list
        root = logging.getLogger()
        with path.open("a", encoding="utf-8") as self.out:
            # The task runner opens this group before the task starts; dag.test() skips that step.
            self.write({"timestamp": datetime.now().astimezone().isoformat(), "event": "::group::Pre Execute"})
            root.addHandler(self._handler)
            try:
                yield
            finally:
                root.removeHandler(self._handler)
                self.out = None
                if self in processors:
                    processors.remove(self)


@contextmanager
def _task_log_files(on_task_end: Callable[[Any, float], None] | None = None) -> Iterator[None]:
    """While active, every task ``dag.test()`` runs also logs to its file under ``[logging] base_log_folder``.

    ``on_task_end(ti, seconds)`` is called after each task ran, with its task instance in its new state.
    """
    from airflow.sdk.definitions import dag as dag_module

    original = getattr(dag_module, "_run_task", None)
    if original is None:  # another Airflow version: the console log only
        yield
        return
    tee = _TaskLogTee()

    def run_task(*, ti: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            with tee.to(task_log_path(ti)):
                return original(ti=ti, **kwargs)
        finally:
            if on_task_end is not None:
                on_task_end(ti, time.monotonic() - started)

    dag_module._run_task = run_task
    try:
        yield
    finally:
        dag_module._run_task = original


def run_dag(
    dag_id: str,
    dags_folder: str | os.PathLike[str] | None = None,
    conf: dict[str, Any] | None = None,
    logical_date: datetime | None = None,
    triggering_events: list[int] | None = None,
    on_task_end: Callable[[Any, float], None] | None = None,
) -> Any:
    """Run ``dag_id`` from ``dags_folder`` (default: Airflow's dags folder) once; returns the finished DagRun.

    Each task's log goes to the console and to its file under ``$AIRFLOW_HOME/logs``, where the UI reads it.
    ``on_task_end(ti, seconds)``, if given, is called as each task finishes running (tasks the run skips
    without running them are not reported).
    """
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
    with _task_log_files(on_task_end):
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


async def first_event(trigger: Any, timeout: float = 30) -> Any:
    """The payload of the first event a trigger fires (within ``timeout`` seconds); the trigger is closed after."""
    import asyncio

    events = trigger.run()
    try:
        return (await asyncio.wait_for(events.__anext__(), timeout)).payload
    finally:
        await events.aclose()
