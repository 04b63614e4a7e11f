"""The extra links' addresses in the MLflow UI, and where a task keeps them."""

from __future__ import annotations

import pytest

from airflow_mlc.links.mlflow import DriftReportLink, MLflowRunLink, artifact_url, model_version_url, run_url

pytestmark = pytest.mark.unit


def test_links_point_into_the_mlflow_ui_and_are_empty_without_one() -> None:
    assert run_url("http://mlflow:5000/", "7", "abc") == "http://mlflow:5000/#/experiments/7/runs/abc"
    assert model_version_url("http://mlflow:5000", "bikes", "3") == "http://mlflow:5000/#/models/bikes/versions/3"
    assert artifact_url("http://mlflow:5000", "7", "abc", "drift/drift.html") == (
        "http://mlflow:5000/#/experiments/7/runs/abc/artifacts/drift/drift.html"
    )
    assert run_url(None, "7", "abc") is None and artifact_url(None, "7", "abc", "x") is None
    assert model_version_url("http://mlflow:5000", "bikes", None) is None


class TaskInstance:
    def __init__(self) -> None:
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value


def test_a_link_is_kept_under_its_own_key_and_only_when_there_is_one() -> None:
    ti = TaskInstance()
    MLflowRunLink.persist({"ti": ti}, "http://mlflow/#/experiments/1/runs/r")  # type: ignore[arg-type]
    DriftReportLink.persist({"ti": ti}, None)  # type: ignore[arg-type]
    assert ti.pushed == {"mlflow_run_url": "http://mlflow/#/experiments/1/runs/r"}
    assert {MLflowRunLink.name, DriftReportLink.name} == {"MLflow run", "Drift report"}
