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
]
SENSOR_MODULES = ["airflow_mlc.sensors.data", "airflow_mlc.sensors.model", "airflow_mlc.sensors.drift"]


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
            {"hook-class-name": "airflow_mlc.hooks.mlflow.MLflowHook", "connection-type": "mlflow"},
        ],
        "extra-links": [
            "airflow_mlc.links.mlflow.MLflowRunLink",
            "airflow_mlc.links.mlflow.MLflowModelVersionLink",
            "airflow_mlc.links.mlflow.DriftReportLink",
        ],
    }
