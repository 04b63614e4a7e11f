"""MLflow plumbing: where the tracking store is, experiments, and finding a run by its Airflow keys."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Tags that tie MLflow runs and model versions to the Airflow run that made them.
TAG_DAG_ID = "mlc.dag_id"
TAG_RUN_ID = "mlc.run_id"
TAG_TASK_ID = "mlc.task_id"
TAG_MODEL = "mlc.model"
TAG_FINGERPRINT = "mlc.data_fingerprint"
TAG_WINDOW_START = "mlc.window_start"
TAG_WINDOW_END = "mlc.window_end"
TAG_TRAIN_DATA = "mlc.train_data_uri"
TAG_TEST_DATA = "mlc.test_data_uri"


@dataclass(frozen=True)
class MlflowTarget:
    """Where MLflow lives: the tracking URI, an optional registry URI, credentials, and the UI's address.

    ``env`` holds MLflow's own credential variables (``MLFLOW_TRACKING_TOKEN`` ...); they are set in
    the process environment when the target is activated and never logged.
    """

    tracking_uri: str
    registry_uri: str | None = None
    artifact_location: str | None = None
    ui_url: str | None = None
    env: dict[str, str] = field(default_factory=dict, repr=False)

    def activate(self) -> Any:
        """Point the mlflow module at this target; returns an ``MlflowClient``."""
        import mlflow
        from mlflow.tracking import MlflowClient

        os.environ.update(self.env)
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.registry_uri or self.tracking_uri)
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri or self.tracking_uri)


#: Where ``mlflow ui`` serves the embedded store by default.
EMBEDDED_UI_URL = "http://127.0.0.1:5000"


def embedded_target(home: str | os.PathLike[str]) -> MlflowTarget:
    """The default store when no MLflow connection exists: SQLite and a local folder under ``home``."""
    folder = Path(home) / "mlflow"
    folder.mkdir(parents=True, exist_ok=True)
    return MlflowTarget(
        tracking_uri=f"sqlite:///{folder / 'mlflow.db'}",
        artifact_location=(folder / "artifacts").as_uri(),
        ui_url=EMBEDDED_UI_URL,
    )


def ensure_experiment(client: Any, name: str, artifact_location: str | None) -> str:
    """The id of the experiment ``name``, created (with its artifact location) when missing."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    location = f"{artifact_location.rstrip('/')}/{name.replace('/', '_')}" if artifact_location else None
    try:
        return str(client.create_experiment(name, artifact_location=location))
    except MlflowException:  # created meanwhile by a concurrent task
        return str(client.get_experiment_by_name(name).experiment_id)


def find_runs(client: Any, experiment_id: str, tags: dict[str, str]) -> list[Any]:
    """Active runs of the experiment carrying all ``tags``, newest first."""
    clauses = [f"tags.`{key}` = '{value}'" for key, value in tags.items()]
    return list(
        client.search_runs(
            [experiment_id], filter_string=" and ".join(clauses), order_by=["attributes.start_time DESC"]
        )
    )
