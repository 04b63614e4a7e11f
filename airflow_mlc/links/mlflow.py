"""Extra links from a task: the MLflow run it logged to, the model version it registered, its drift report."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink
from airflow.sdk.execution_time.xcom import XCom

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey


class XComLink(BaseOperatorLink):
    """A link whose address the task stored in XCom under ``key``."""

    name = ""
    key = ""

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        value: Any = XCom.get_value(key=self.key, ti_key=ti_key)
        return str(value) if value else ""

    @classmethod
    def persist(cls, context: Context, url: str | None) -> None:
        if url:
            context["ti"].xcom_push(key=cls.key, value=url)


class MLflowRunLink(XComLink):
    name = "MLflow run"
    key = "mlflow_run_url"


class MLflowModelVersionLink(XComLink):
    name = "MLflow model version"
    key = "mlflow_model_version_url"


class DriftReportLink(XComLink):
    name = "Drift report"
    key = "drift_report_url"


def run_url(ui_url: str | None, experiment_id: str, run_id: str) -> str | None:
    return f"{ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}" if ui_url else None


def model_version_url(ui_url: str | None, model: str, version: str | None) -> str | None:
    return f"{ui_url.rstrip('/')}/#/models/{model}/versions/{version}" if ui_url and version else None


def artifact_url(ui_url: str | None, experiment_id: str, run_id: str, path: str) -> str | None:
    """The MLflow UI page of one artifact of a run."""
    url = run_url(ui_url, experiment_id, run_id)
    return f"{url}/artifacts/{path}" if url else None
