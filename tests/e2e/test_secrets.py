"""A connection's password never reaches task logs, XComs, MLflow or the reports, across the whole life cycle.

The source and the prediction table are on the real PostgreSQL server of this machine (trust authentication:
the password is sent and ignored), the MLflow connection has a login and the same password. Training,
monitoring and prediction run through ``dag.test()``; then every place a value could land is searched for
the password.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_mlc.testing import run_dag, task_states
from tests.conftest import BIKES_CSV
from tests.e2e.test_training_dag import WINTER, bikes_data, make_spec

pytestmark = pytest.mark.e2e

MARKER = "mlc-marker-s3cr3t-7f3a"
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture
def source_table() -> Iterator[str]:
    """A PostgreSQL table of the bike data, dropped after the test (with the prediction table beside it)."""
    import pandas as pd
    import sqlalchemy

    name = f"bikes_{uuid.uuid4().hex[:8]}"
    engine = sqlalchemy.create_engine(POSTGRES)
    pd.read_csv(BIKES_CSV, parse_dates=["timestamp"]).to_sql(name, engine, index=False)
    try:
        yield name
    finally:
        with engine.begin() as connection:
            for table in (name, f"{name}_predictions"):
                connection.execute(sqlalchemy.text(f"DROP TABLE IF EXISTS {table}"))
        engine.dispose()


def places_holding(root: Path, text: str) -> list[str]:
    """The files under ``root`` whose bytes contain ``text``."""
    needle = text.encode()
    return [str(path) for path in root.rglob("*") if path.is_file() and needle in path.read_bytes()]


def mlflow_values(client: Any) -> Iterator[tuple[str, str]]:
    """Every tag, param and description of every run, registered model and version, as (where, value)."""
    for experiment in client.search_experiments():
        yield f"experiment {experiment.name}", json.dumps(experiment.tags)
        for run in client.search_runs([experiment.experiment_id]):
            where = f"run {run.info.run_name}"
            yield where, json.dumps({**run.data.tags, **run.data.params})
    for model in client.search_registered_models():
        yield f"model {model.name}", json.dumps({"tags": model.tags, "description": model.description})
        for version in client.search_model_versions(f"name = '{model.name}'"):
            yield (
                f"{model.name} v{version.version}",
                json.dumps({"tags": version.tags, "description": version.description}),
            )


def airflow_rows() -> Iterator[tuple[str, str]]:
    """XCom values, rendered template fields, run confs and stored trigger arguments in Airflow's database."""
    import sqlalchemy
    from airflow.settings import engine

    with engine.connect() as connection:
        for table, column in (
            ("xcom", "value"),
            ("rendered_task_instance_fields", "rendered_fields"),
            ("dag_run", "conf"),
            ("trigger", "kwargs"),
        ):
            for (value,) in connection.execute(sqlalchemy.text(f"SELECT {column} FROM {table}")):
                yield table, str(value)


def test_a_password_never_leaves_its_connection(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source_table: str
) -> None:
    from airflow.configuration import conf

    from airflow_mlc.hooks.mlflow import MLflowHook

    postgres = {"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "postgres", "schema": "test"}
    monkeypatch.setenv("AIRFLOW_CONN_MLC_SECRET_DB", json.dumps({**postgres, "password": MARKER}))
    mlflow_folder = tmp_path / "mlflow"
    mlflow_folder.mkdir()
    extra = {"tracking_uri": f"sqlite:///{mlflow_folder / 'mlflow.db'}", "artifact_location": mlflow_folder.as_uri()}
    mlflow_conn = {"conn_type": "mlflow", "login": "mlc", "password": MARKER, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_MLC_SECRET_MLFLOW", json.dumps(mlflow_conn))

    data = bikes_data("secretive")
    query = f"SELECT * FROM {source_table} WHERE timestamp >= :window_start AND timestamp < :window_end"
    data["source"] = {"sql": query, "conn_id": "mlc_secret_db", "time_column": "timestamp"}
    data["mlflow"] = {"conn_id": "mlc_secret_mlflow"}
    data["prediction"] = {"window_days": 7, "table": f"{source_table}_predictions", "conn_id": "mlc_secret_db"}
    spec = make_spec(tmp_path, data)

    runs = [
        run_dag(f"mlc_{spec.name}_train", conf=WINTER),
        run_dag(f"mlc_{spec.name}_monitor", conf={"window_end": "2011-05-15"}),
        run_dag(f"mlc_{spec.name}_predict", conf={"window_end": "2011-05-15"}),
    ]
    for run in runs:
        assert str(run.state) == "success", task_states(run)
    client = MLflowHook("mlc_secret_mlflow").get_conn().activate()
    assert client.get_registered_model(spec.registered_model_name) is not None  # the runs used this store

    logs = Path(conf.get("logging", "base_log_folder"))
    files = [logs, Path(spec.storage.artifact_root or ""), mlflow_folder]
    written = [path for path in logs.rglob("*") if f"mlc_{spec.name}_" in str(path) and path.is_file()]
    assert len(written) >= 10 and all(path.stat().st_size for path in written)  # the task logs are where we look
    assert [place for root in files for place in places_holding(root, MARKER)] == []
    assert [where for where, value in mlflow_values(client) if MARKER in value] == []
    assert [table for table, value in airflow_rows() if MARKER in value] == []

    planted = tmp_path / "planted" / "report.html"  # the search finds a password where there is one
    planted.parent.mkdir()
    planted.write_text(f"<p>{MARKER}</p>")
    assert places_holding(planted.parent, MARKER) == [str(planted)]
