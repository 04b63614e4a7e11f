"""Provider metadata read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_mlc import __version__

INTEGRATION = "airflow-mlc"
OPERATOR_MODULES = [
    "airflow_mlc.operators.ingest",
    "airflow_mlc.operators.validate",
    "airflow_mlc.operators.prepare",
    "airflow_mlc.operators.train",
    "airflow_mlc.operators.evaluate",
    "airflow_mlc.operators.register",
    "airflow_mlc.operators.monitor",
    "airflow_mlc.operators.retrain",
    "airflow_mlc.operators.predict",
    "airflow_mlc.operators.rollback",
    "airflow_mlc.operators.rollout",
]
SENSOR_MODULES = ["airflow_mlc.sensors.data", "airflow_mlc.sensors.model", "airflow_mlc.sensors.drift"]

# The form of an ``mlflow`` connection in the UI. The API server reads it from here without importing the hook
# (or wtforms); ``MLflowHook.get_ui_field_behaviour`` returns the same behaviour for Airflow versions that ask the
# hook. Keep this module light: Airflow imports it in every process that loads the providers.
MLFLOW_UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema"],
    "relabeling": {"host": "Tracking URI", "login": "Username", "password": "Password or token"},
    "placeholders": {
        "host": "http://mlflow:5000",
        "port": "appended to the tracking URI when it has none",
        "login": "basic-auth user (optional)",
        "password": "basic-auth password, or a bearer token without a username",
        "extra": '{"registry_uri": "", "artifact_location": "s3://bucket/mlflow", "ui_url": ""}',
    },
}
# The connection's extras, each its own field of the form (stored in the extra JSON under these names).
MLFLOW_CONN_FIELDS: dict[str, Any] = {
    "registry_uri": {
        "label": "Registry URI",
        "description": "The model registry's store when it is not the tracking server's.",
        "schema": {"type": ["string", "null"]},
    },
    "artifact_location": {
        "label": "Artifact location",
        "description": "Where experiments created by airflow-mlc store their artifacts, e.g. s3://bucket/mlflow.",
        "schema": {"type": ["string", "null"]},
    },
    "ui_url": {
        "label": "MLflow UI URL",
        "description": "The address of the MLflow UI for the task links (default: the tracking URI).",
        "schema": {"type": ["string", "null"]},
    },
    "token": {
        "label": "Token",
        "description": "A bearer token for the tracking server, when the password field does not hold one.",
        "schema": {"type": ["string", "null"], "format": "password"},
    },
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-mlc",
        "name": "airflow-mlc",
        "description": "The machine-learning life cycle on Airflow: spec-driven training, MLflow registry, drift.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://mlflow.org/docs/latest/",
                "tags": ["software"],
            }
        ],
        "operators": [{"integration-name": INTEGRATION, "python-modules": OPERATOR_MODULES}],
        "sensors": [{"integration-name": INTEGRATION, "python-modules": SENSOR_MODULES}],
        "triggers": [{"integration-name": INTEGRATION, "python-modules": ["airflow_mlc.triggers.probe"]}],
        "hooks": [
            {
                "integration-name": INTEGRATION,
                "python-modules": ["airflow_mlc.hooks.mlflow", "airflow_mlc.hooks.storage"],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_mlc.hooks.mlflow.MLflowHook",
                "hook-name": "MLflow",
                "connection-type": "mlflow",
                "ui-field-behaviour": MLFLOW_UI_FIELD_BEHAVIOUR,
                "conn-fields": MLFLOW_CONN_FIELDS,
            },
        ],
        "extra-links": [
            "airflow_mlc.links.mlflow.MLflowRunLink",
            "airflow_mlc.links.mlflow.MLflowModelVersionLink",
            "airflow_mlc.links.mlflow.DriftReportLink",
        ],
    }
