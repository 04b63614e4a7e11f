"""The integration tier: one real deployment per executor, shared by the tests of a module."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BIKES_CSV
from tests.integration.rest import AirflowApi
from tests.integration.stack import ADMIN, S3_KEY, S3_SECRET, Deployment, Timings, deployment, s3_client

SPEC_NAME = "bikes"
DAG_IDS = {phase: f"mlc_{SPEC_NAME}_{phase}" for phase in ("train", "monitor", "predict", "rollback")}
SOURCE_TABLE = "bike_rentals"
#: Rows before this day are in the source table from the start; the rest arrive while a sensor waits.
FIRST_LOAD_END = "2011-04-01"


@dataclass
class Deployed:
    """A deployment with its data loaded, its connections made and its DAGs unpaused, and ways to look inside."""

    stack: Deployment
    api: AirflowApi

    def load_rows(self, since: str | None = None, until: str | None = None) -> int:
        """Append the bike rows in [since, until) to the source table; returns how many."""
        import pandas as pd
        import sqlalchemy

        frame = pd.read_csv(BIKES_CSV, parse_dates=["timestamp"])
        if since:
            frame = frame[frame["timestamp"] >= since]
        if until:
            frame = frame[frame["timestamp"] < until]
        frame.to_sql(SOURCE_TABLE, sqlalchemy.create_engine(self.stack.source_url), index=False, if_exists="append")
        return len(frame)

    def mlflow(self) -> Any:
        import mlflow

        # both URIs explicit: other tiers' tests may have set the process's default registry
        return mlflow.MlflowClient(tracking_uri=self.stack.mlflow_url, registry_uri=self.stack.mlflow_url)

    def s3_keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = (
            s3_client(self.stack.s3_endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        )
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def s3_text(self, bucket: str, key: str) -> str:
        return s3_client(self.stack.s3_endpoint).get_object(Bucket=bucket, Key=key)["Body"].read().decode()

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        import sqlalchemy

        with sqlalchemy.create_engine(self.stack.source_url).connect() as connection:
            return [tuple(row) for row in connection.execute(sqlalchemy.text(sql))]


def make_connections(api: AirflowApi, stack: Deployment) -> None:
    """The three connections the deployment spec names, created as ordinary Airflow connections."""
    mlflow_host, mlflow_port = stack.mlflow_url.removeprefix("http://").split(":")
    api.add_connection("mlflow_default", "mlflow", host=f"http://{mlflow_host}", port=int(mlflow_port))
    api.add_connection(
        "mlc_s3",
        "aws",
        login=S3_KEY,
        password=S3_SECRET,
        extra=json.dumps({"endpoint_url": stack.s3_endpoint, "region_name": "us-east-1"}),
    )
    database = stack.source_url.rsplit("/", 1)[1]
    api.add_connection("mlc_source", "postgres", host="127.0.0.1", port=5432, login="postgres", schema=database)


@contextlib.contextmanager
def deployed_on(
    workdir: Path,
    executor: str,
    extra_env: Mapping[str, str] | None = None,
    spec_change: Callable[[dict[str, Any]], None] | None = None,
    load_until: str | None = FIRST_LOAD_END,
) -> Iterator[Deployed]:
    """A deployment (``stack.deployment``) with the bike rows before ``load_until`` loaded (all of them with
    None), its connections made and its DAGs unpaused."""
    timings = Timings()  # written to <workdir>/timings.json: where the set-up's seconds went
    with deployment(workdir, executor, timings, extra_env=extra_env, spec_change=spec_change) as stack:
        api = AirflowApi(stack.airflow.api_url, *ADMIN, diagnostics=stack.airflow.task_logs)
        result = Deployed(stack, api)
        result.load_rows(until=load_until)
        make_connections(api, stack)
        timings.mark("rows loaded, connections made")
        api.wait_for_dags(list(DAG_IDS.values()))
        timings.mark("dags parsed")
        for phase in ("train", "monitor", "predict"):
            api.unpause(DAG_IDS[phase])
        timings.write(workdir / "timings.json")
        yield result


@pytest.fixture(scope="module", params=["PreloadingLocalExecutor", "CeleryExecutor"])
def deployed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    with deployed_on(tmp_path_factory.mktemp(request.param), request.param) as result:
        yield result
