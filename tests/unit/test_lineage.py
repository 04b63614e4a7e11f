"""Dataset naming of the OpenLineage reports (airflow_mlc/lineage.py) and the operators' facets, without a run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from airflow_mlc import lineage
from airflow_mlc.lineage import (
    LineageDataset,
    file_dataset,
    file_location,
    mlflow_namespace,
    mlflow_run_dataset,
    model_version_dataset,
    sql_namespace,
    sql_table_name,
    uri_dataset,
)
from tests.conftest import BIKES_CSV, BIKES_SPEC

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("/data/bikes.csv", ("file", "/data/bikes.csv")),
        ("file:///data/my%20bikes.csv", ("file", "/data/my bikes.csv")),
        ("s3://lake/models/bikes/snapshot.parquet", ("s3://lake", "models/bikes/snapshot.parquet")),
        ("gs://lake/bikes.csv", ("gs://lake", "bikes.csv")),
        ("https://user:secret@files.example.com/bikes.csv", ("https://files.example.com", "bikes.csv")),
    ],
)
def test_files_are_named_by_their_store_and_path(uri: str, expected: tuple[str, str]) -> None:
    assert file_location(uri) == expected


def test_a_relative_path_is_named_by_its_absolute_path() -> None:
    assert file_location("data/bikes.csv") == ("file", os.path.abspath("data/bikes.csv"))


def test_a_file_dataset_carries_what_is_known_of_it() -> None:
    snapshot = file_dataset("/a/snapshot.parquet", ["hr", "temp"], 10, "abc")
    assert snapshot == LineageDataset("file", "/a/snapshot.parquet", "FILE", None, ("hr", "temp"), 10, "abc")


@pytest.mark.parametrize(
    ("kind", "host", "port", "database", "expected"),
    [
        ("postgres", "db.example.com", None, "rides", "postgres://db.example.com:5432"),
        ("postgresql+psycopg2", "db.example.com", 5433, "rides", "postgres://db.example.com:5433"),
        ("mysql+pymysql", "maria", None, "rides", "mysql://maria:3306"),
        ("mariadb", "maria", 3307, None, "mysql://maria:3307"),
        ("sqlite", "/data/rides.db", None, None, "sqlite:///data/rides.db"),
        ("sqlite", None, None, "/data/rides.db", "sqlite:///data/rides.db"),
        ("snowflake", "acct", None, "rides", "snowflake://acct"),
    ],
)
def test_sql_namespaces_follow_the_naming_spec(
    kind: str, host: str | None, port: int | None, database: str | None, expected: str
) -> None:
    assert sql_namespace(kind, host, port, database) == expected


@pytest.mark.parametrize(
    ("namespace", "table", "database", "expected"),
    [
        ("postgres://db:5432", "predictions", "rides", "rides.public.predictions"),
        ("postgres://db:5432", "analytics.predictions", "rides", "rides.analytics.predictions"),
        ("postgres://db:5432", "other.analytics.predictions", "rides", "other.analytics.predictions"),
        ("postgres://db:5432", '"Predictions"', None, "public.Predictions"),
        ("mysql://maria:3306", "predictions", "rides", "rides.predictions"),
        ("sqlite:///data/rides.db", "main.predictions", None, "predictions"),
        ("snowflake://acct", "analytics.predictions", "RIDES", "RIDES.analytics.predictions"),
    ],
)
def test_tables_are_as_qualified_as_their_database_names_them(
    namespace: str, table: str, database: str | None, expected: str
) -> None:
    assert sql_table_name(namespace, table, database) == expected


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("https://user:token@mlflow.example.com/", "https://mlflow.example.com"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("sqlite:////srv/mlflow/mlflow.db", "sqlite:////srv/mlflow/mlflow.db"),
        ("postgresql://mlflow:secret@db:5432/mlflow?sslmode=require", "postgresql://db:5432/mlflow"),
        ("/srv/mlruns", "file:///srv/mlruns"),
        ("file:///srv/mlruns/", "file:///srv/mlruns"),
        ("databricks", "databricks"),
    ],
)
def test_mlflow_namespaces_are_the_tracking_uri_without_credentials(uri: str, expected: str) -> None:
    assert mlflow_namespace(uri) == expected


def test_mlflow_runs_and_model_versions_are_named_by_their_registry_paths() -> None:
    run = mlflow_run_dataset("https://u:p@mlflow.example.com", "3", "abc123")
    assert (run.namespace, run.name, run.type, run.subtype) == (
        "https://mlflow.example.com",
        "experiments/3/runs/abc123",
        "JOB_OUTPUT",
        "MLFLOW_RUN",
    )
    version = model_version_dataset("https://mlflow.example.com", "bikes", 7)
    assert (version.namespace, version.name, version.type, version.version) == (
        "https://mlflow.example.com",
        "models/bikes/versions/7",
        "MODEL",
        "7",
    )


def test_an_asset_is_named_by_its_uri() -> None:
    assert (uri_dataset("mlc://bikes/retrain").namespace, uri_dataset("mlc://bikes/retrain").name) == (
        "mlc://bikes",
        "retrain",
    )


def test_a_sql_source_reads_the_tables_its_query_names() -> None:
    pytest.importorskip("airflow.providers.openlineage")
    from airflow_mlc.spec import SourceSpec

    query = "SELECT * FROM hourly h JOIN weather.daily d ON h.day = d.day WHERE h.ts >= :window_start"
    source = SourceSpec(sql=query, url="postgresql+psycopg2://u:secret@db.example.com/rides", time_column="ts")
    datasets = lineage.source_datasets(source)
    assert [(d.namespace, d.name, d.type) for d in datasets] == [
        ("postgres://db.example.com:5432", "rides.public.hourly", "TABLE"),
        ("postgres://db.example.com:5432", "rides.weather.daily", "TABLE"),
    ]


def test_an_airflow_connection_names_its_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MLC_RIDES", "postgres://u:secret@db.example.com:5433/rides")
    monkeypatch.setenv("AIRFLOW_CONN_MLC_LOCAL", '{"conn_type": "sqlite", "host": "/data/rides.db"}')
    assert lineage.sql_connection_location("mlc_rides") == ("postgres://db.example.com:5433", "rides", "postgres")
    assert lineage.sql_connection_location("mlc_local") == ("sqlite:///data/rides.db", None, "sqlite")


def ingest_operator():
    from airflow_mlc.operators.ingest import IngestOperator
    from airflow_mlc.spec import load_spec

    operator = IngestOperator(task_id="ingest", spec=load_spec(BIKES_SPEC))
    operator._lineage_result = {
        "uri": "s3://lake/bikes/snapshot.parquet",
        "rows": 12,
        "fingerprint": "f1",
        "columns": ["timestamp", "hr"],
        "window": {},
    }
    return operator


def test_an_operator_reports_its_inputs_and_outputs_as_openlineage_datasets() -> None:
    pytest.importorskip("airflow.providers.openlineage")
    from openlineage.client.serde import Serde

    facets = ingest_operator().get_openlineage_facets_on_complete(None)
    (source,) = facets.inputs
    assert (source.namespace, source.name) == ("file", str(Path(BIKES_CSV).resolve()))
    (snapshot,) = [Serde.to_dict(d) for d in facets.outputs]
    assert (snapshot["namespace"], snapshot["name"]) == ("s3://lake", "bikes/snapshot.parquet")
    assert snapshot["facets"]["datasetType"]["datasetType"] == "FILE"
    assert [f["name"] for f in snapshot["facets"]["schema"]["fields"]] == ["timestamp", "hr"]
    assert snapshot["facets"]["version"]["datasetVersion"] == "f1"
    assert snapshot["outputFacets"]["outputStatistics"]["rowCount"] == 12
    assert facets.job_facets == {}  # a file source: no query


def test_a_registered_version_is_a_model_dataset() -> None:
    pytest.importorskip("airflow.providers.openlineage")
    from airflow_mlc.core.tracking import MlflowTarget
    from airflow_mlc.operators.register import RegisterModelOperator
    from airflow_mlc.spec import load_spec

    training = {"run_id": "r1", "experiment_id": "4", "model_uri": "models:/m-1"}
    operator = RegisterModelOperator(task_id="register", spec=load_spec(BIKES_SPEC), training=training, evaluation={})
    operator.__dict__["mlflow_target"] = MlflowTarget(tracking_uri="http://u:p@mlflow:5000/")
    operator._lineage_result = {"model": "bikes", "version": "3", "promoted": True, "dry_run": False}
    facets = operator.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in facets.inputs] == [("http://mlflow:5000", "experiments/4/runs/r1")]
    (version,) = facets.outputs
    assert (version.namespace, version.name) == ("http://mlflow:5000", "models/bikes/versions/3")
    assert (version.facets["datasetType"].datasetType, version.facets["datasetType"].subType) == (
        "MODEL",
        "MLFLOW_MODEL_VERSION",
    )
    operator._lineage_result = {**operator._lineage_result, "dry_run": True}
    assert operator.get_openlineage_facets_on_complete(None).outputs == []  # a dry run registers nothing


def test_without_the_openlineage_provider_there_is_no_lineage_and_nothing_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "airflow.providers.openlineage.extractors.base", None)  # not installed
    assert not lineage.provider_installed()
    assert lineage.operator_lineage([file_dataset("/a.csv")], []) is None
    assert ingest_operator().get_openlineage_facets_on_complete(None) is None
