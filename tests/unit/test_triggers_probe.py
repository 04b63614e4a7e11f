"""ProbeTrigger: concurrent triggers keep their MLflow credentials apart; stored arguments hold no password."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from airflow_mlc.core import mlflow_auth
from airflow_mlc.sensors.data import DataAvailableSensor, url_has_secret
from airflow_mlc.spec import parse_spec
from airflow_mlc.testing import first_event
from airflow_mlc.triggers.probe import ProbeTrigger
from tests.unit.test_hooks_mlflow import (
    basic,
    fake_mlflow_server,
    mlflow_left_as_found,
    mlflow_variables,
    set_connection,
)
from tests.unit.test_sensors import spec_data

pytestmark = pytest.mark.unit

MARKER = "marker-s3cr3t"
RUN_END = datetime(2024, 1, 8, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def mlflow_isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with mlflow_left_as_found(monkeypatch):
        yield


# --- MLflow credentials: one triggerer, two connections ------------------------------------------------


async def poll(trigger: ProbeTrigger, done: Any, timeout: float = 30) -> None:
    """Run the trigger until ``done()`` holds (it has probed a few times), then cancel it and close it."""
    events = trigger.run()
    waiting = asyncio.ensure_future(events.__anext__())
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not done():
            assert not waiting.done(), f"the trigger fired: {waiting.result().payload}"
            assert asyncio.get_running_loop().time() < deadline, "the trigger did not probe often enough"
            await asyncio.sleep(0.02)
    finally:
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await events.aclose()


def test_concurrent_triggers_send_each_connection_its_own_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two model-version probes in one event loop, against one server: no request carries the other's credentials.

    The server answers slowly, so the probes' threads overlap: with credentials in ``os.environ``, one
    connection's requests would carry the other's.
    """
    polls = 4
    expected = {"model_alice": basic("alice", "pw-alice"), "model_bob": basic("bob", "pw-bob")}
    with fake_mlflow_server(delay=0.03) as server:
        set_connection(monkeypatch, "mlc_probe_alice", host=server.url, login="alice", password="pw-alice")
        set_connection(monkeypatch, "mlc_probe_bob", host=server.url, login="bob", password="pw-bob")

        def requests_of(model: str) -> list[Any]:
            return [r for r in server.received() if r.query.get("name") == [model]]

        def trigger(conn_id: str, model: str) -> ProbeTrigger:
            arguments = {"mlflow_conn_id": conn_id, "model": model, "alias": "champion"}
            return ProbeTrigger("model_version", arguments, poke_interval=0.05)

        async def both() -> None:
            await asyncio.gather(
                poll(trigger("mlc_probe_alice", "model_alice"), lambda: len(requests_of("model_alice")) >= polls),
                poll(trigger("mlc_probe_bob", "model_bob"), lambda: len(requests_of("model_bob")) >= polls),
            )

        with mlflow_auth.credentials_scope(None):
            asyncio.run(both())  # also waits for the probes' threads still running
        requests = server.received()

    for model, authorization in expected.items():
        mine = [r for r in requests if r.query.get("name") == [model]]
        assert len(mine) >= polls
        assert all(r.path.endswith("/registered-models/alias") for r in mine)
        assert [r.authorization for r in mine] == [authorization] * len(mine)
    assert {r.authorization for r in requests} == set(expected.values())
    assert mlflow_variables() == set()
    assert not any("pw-alice" in v or "pw-bob" in v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_"))


# --- the data sensor: a source URL with a password never reaches the trigger's arguments -------------


def write_spec(folder: Path, source: dict[str, Any]) -> Path:
    path = folder / "guarded.yaml"
    path.write_text(yaml.safe_dump(spec_data(source, name="guarded")))
    return path


def context() -> dict[str, Any]:
    return {"data_interval_end": RUN_END, "dag_run": None, "ti": None}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def deferred_trigger(sensor: DataAvailableSensor) -> ProbeTrigger:
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, ProbeTrigger)
    return trigger


def test_a_deferred_data_sensor_stores_no_password(tmp_path: Path) -> None:
    """The trigger's serialized kwargs name the spec file; the probe reads the URL there, and says no password."""
    port = free_port()  # nothing listens: each probe fails to connect
    url = f"postgresql://u:{MARKER}@127.0.0.1:{port}/test"
    path = write_spec(tmp_path, {"sql": "SELECT * FROM rides", "url": url, "time_column": "timestamp"})
    sensor = DataAvailableSensor(
        task_id="wait", spec=str(path), deferrable=True, silent_fail=True, poke_interval=0.01, timeout=600
    )
    classpath, kwargs = deferred_trigger(sensor).serialize()
    assert MARKER not in json.dumps(kwargs)
    assert kwargs["arguments"] == {
        "spec_file": str(path.resolve()),
        "spec_name": "guarded",
        "window_start": "2024-01-01T00:00:00+00:00",
        "window_end": "2024-01-08T00:00:00+00:00",
        "min_rows": 2,
    }
    event = asyncio.run(first_event(ProbeTrigger(**kwargs)))  # as the triggerer rebuilds it
    assert event["status"] == "error"
    assert str(port) in event["message"]  # the URL, read from the spec file
    assert MARKER not in event["message"]


def test_a_url_source_is_read_from_its_spec_file_by_the_trigger(tmp_path: Path) -> None:
    import pandas as pd
    import sqlalchemy

    url = f"sqlite:///{tmp_path / 'source.db'}"
    engine = sqlalchemy.create_engine(url)
    rows = pd.DataFrame({"timestamp": pd.date_range("2024-01-03", periods=3, freq="h"), "x": range(3), "y": 0.0})
    rows.head(0).to_sql("rides", engine, index=False)  # the table exists, the window's rows do not yet
    path = write_spec(tmp_path, {"sql": "SELECT * FROM rides", "url": url, "time_column": "timestamp"})
    trigger = deferred_trigger(DataAvailableSensor(task_id="wait", spec=str(path), deferrable=True, poke_interval=0.01))
    assert set(trigger.arguments) == {"spec_file", "spec_name", "window_start", "window_end", "min_rows"}
    rows.to_sql("rides", engine, index=False, if_exists="append")
    engine.dispose()
    event = asyncio.run(first_event(trigger))
    assert event == {
        "status": "success",
        "rows": 3,
        "min_rows": 2,
        "window": {"start": "2024-01-01T00:00:00+00:00", "end": "2024-01-08T00:00:00+00:00"},
        "source": "sql",
    }
    other = write_spec(tmp_path, {"sql": "SELECT * FROM rides", "url": url})
    other.write_text(other.read_text().replace("name: guarded", "name: renamed"))
    failed = asyncio.run(first_event(ProbeTrigger("data_available", trigger.arguments, poke_interval=0.01)))
    assert failed == {"status": "error", "message": f"{other.resolve()}: holds the spec 'renamed', not 'guarded'"}


def test_a_spec_without_a_file_whose_url_holds_a_password_cannot_defer() -> None:
    spec = parse_spec(spec_data({"sql": "SELECT 1", "url": f"postgresql://u:{MARKER}@127.0.0.1/test"}, name="guarded"))
    sensor = DataAvailableSensor(task_id="wait", spec=spec, deferrable=True, poke_interval=5, timeout=600)
    with pytest.raises(AirflowFailException, match="source.url holds a password, and a deferrable sensor") as failure:
        sensor.execute(context())
    assert MARKER not in str(failure.value)
    poking = DataAvailableSensor(task_id="wait", spec=spec, poke_interval=5, timeout=600)
    assert poking.probe_arguments(context())["source"]["url"].endswith("@127.0.0.1/test")  # never stored


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("postgresql://u:pw@db/test", True),
        ("postgresql://u@db/test?password=pw", True),
        ("mssql+pyodbc:///?odbc_connect=DRIVER%3Dx%3BPWD%3Dpw", True),
        ("postgresql://u@db/test", False),
        ("sqlite:////tmp/source.db", False),
    ],
)
def test_url_has_secret(url: str, secret: bool) -> None:
    assert url_has_secret(url) is secret
