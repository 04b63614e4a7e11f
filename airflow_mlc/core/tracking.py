"""MLflow plumbing: where the tracking store is, experiments, and finding a run by its Airflow keys."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_mlc.core.mlflow_auth import MlflowCredentials, check_provider_registered, set_credentials

#: Every tag airflow-mlc writes starts with this.
TAG_PREFIX = "mlc."
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
TAG_TRIGGERED_BY = "mlc.triggered_by"

#: What an MLflow run of airflow-mlc is (its ``mlc.kind``): a monitoring run (one per monitoring DAG run, shared
#: by its drift and quality tasks), a prediction run (one per prediction DAG run), a champion move, a rollout
#: judgement. Training runs have no kind.
TAG_KIND = "mlc.kind"
KIND_MONITORING = "monitoring"
KIND_PREDICTION = "prediction"
KIND_CHAMPION_MOVE = "champion_move"
KIND_ROLLOUT = "rollout"
#: Tags of a monitoring run.
TAG_MODEL_VERSION = "mlc.model_version"
TAG_DRIFT_DETECTED = "mlc.drift_detected"
TAG_DRIFTED_SHARE = "mlc.drifted_share"
TAG_DRIFT_REPORT = "mlc.drift_report_uri"
TAG_QUALITY_DEGRADED = "mlc.quality_degraded"
TAG_RETRAIN_REQUESTED = "mlc.retrain_requested"
TAG_RETRAIN_REASON = "mlc.retrain_reason"

#: Tags of a training run and its model version: the model, its classes, and the evaluation behind the decision.
TAG_MODEL_URI = "mlc.model_uri"
TAG_CLASSES = "mlc.classes"
TAG_POSITIVE_CLASS = "mlc.positive_class"
TAG_SPLIT_RULE = "mlc.split_rule"
TAG_SCORE_METRIC = "mlc.score_metric"
TAG_SCORE = "mlc.score"
TAG_CHAMPION_SCORE = "mlc.champion_score"
TAG_COMPARED_WITH = "mlc.compared_with"
TAG_SCORED_ON = "mlc.scored_on"
TAG_SCORED_ROWS = "mlc.scored_rows"
TAG_IMPROVEMENT = "mlc.improvement"
TAG_CI_LOW = "mlc.improvement_ci_low"
TAG_CI_HIGH = "mlc.improvement_ci_high"
TAG_CONFIDENCE = "mlc.confidence"
#: The evidence behind a promotion, copied from the version onto its champion-move record.
EVIDENCE_TAGS = (
    TAG_SCORE_METRIC,
    TAG_SCORE,
    TAG_CHAMPION_SCORE,
    TAG_SCORED_ON,
    TAG_SCORED_ROWS,
    TAG_IMPROVEMENT,
    TAG_CI_LOW,
    TAG_CI_HIGH,
    TAG_CONFIDENCE,
)

#: Tags of a registry decision, on the model version.
TAG_GATE_PASSED = "mlc.gate_passed"
TAG_PROMOTED = "mlc.promoted"
TAG_PREVIOUS_CHAMPION = "mlc.previous_champion"
TAG_DECISION = "mlc.promotion_reason"
TAG_DECIDED_AT = "mlc.decided_at"
TAG_MODEL_CARD = "mlc.model_card"
TAG_TOP_FEATURES = "mlc.top_features"
TAG_FAIRNESS = "mlc.fairness"
TAG_SLICES = "mlc.slices"
# A challenger's rollout (core.rollout), on its version, and on a rollout record
TAG_ROLLOUT_STATE = "mlc.rollout_state"
TAG_ROLLOUT_STEP = "mlc.rollout_step"
TAG_ROLLOUT_REASON = "mlc.rollout_reason"
TAG_ROLLOUT_JUDGED_BY = "mlc.rollout_judged_by"
TAG_ROLLOUT_ACTION = "mlc.rollout_action"

#: Tags of a champion-move record (a promotion or a rollback).
TAG_MOVE = "mlc.move"
TAG_FROM_VERSION = "mlc.from_version"
TAG_TO_VERSION = "mlc.to_version"
TAG_MOVED_BY = "mlc.moved_by"
TAG_MOVED_AT = "mlc.moved_at"
TAG_REASON = "mlc.reason"

#: Tags of a registry lock (a registered model ``<model>.mlc-lock``).
TAG_LOCK_HOLDER = "mlc.lock_holder"
TAG_LOCK_SINCE = "mlc.lock_since"
TAG_LOCK_HEARTBEAT = "mlc.lock_heartbeat"

#: Tag of a prediction run: where its predictions were written.
TAG_PREDICTIONS_URI = "mlc.predictions_uri"


@dataclass(frozen=True)
class MlflowTarget:
    """Where MLflow lives: the tracking URI, an optional registry URI, credentials, and the UI's address.

    ``credentials`` are never logged and never put in the process environment: activating the target
    makes them those of the MLflow requests of the current context only (see ``core.mlflow_auth``).
    """

    tracking_uri: str
    registry_uri: str | None = None
    artifact_location: str | None = None
    ui_url: str | None = None
    credentials: MlflowCredentials | None = field(default=None, repr=False)

    def activate(self) -> Any:
        """Point the mlflow module at this target; returns an ``MlflowClient``.

        The MLflow requests of the current context (this thread or asyncio task, and MLflow's download
        threads it starts) carry this target's credentials from now on, or none when it has none.
        """
        import mlflow
        from mlflow.tracking import MlflowClient

        set_credentials(self.credentials)
        check_provider_registered()
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


def monitoring_runs(client: Any, experiment_name: str, model: str) -> list[Any]:
    """The monitoring runs of ``model``, newest data first (by the end of the window they checked)."""
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return []
    runs = find_runs(client, experiment.experiment_id, {TAG_KIND: KIND_MONITORING, TAG_MODEL: model})
    return sorted(runs, key=lambda run: run.data.tags.get(TAG_WINDOW_END, ""), reverse=True)


def get_or_create_run(
    client: Any, experiment_id: str, key: dict[str, str], tags: dict[str, str], run_name: str | None = None
) -> str:
    """The id of the run carrying all ``key`` tags (a retry or a later task finds it), created when missing.

    ``tags`` are set on it either way. ``run_name`` names a new run (MLflow picks a random name
    without one); a run found again keeps the name it has.
    """
    found = find_runs(client, experiment_id, key)
    if found:
        run_id = str(found[0].info.run_id)
        for name, value in tags.items():
            client.set_tag(run_id, name, value)
        return run_id
    run = client.create_run(experiment_id, tags={**key, **tags}, run_name=run_name)
    client.set_terminated(run.info.run_id)
    return str(run.info.run_id)


def metric_entities(values: dict[str, float]) -> list[Any]:
    """MLflow metric entities stamped now, for ``client.log_batch``; a NaN or infinite value is left out."""
    import math
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(key, float(value), now, 0) for key, value in values.items() if math.isfinite(float(value))]


#: The longest key :func:`metric_key` returns, leaving room for a prefix within MLflow's 250 characters.
MAX_METRIC_KEY = 200


def metric_key(name: str) -> str:
    """``name`` (a column name, say) as a valid MLflow metric key, still readable.

    MLflow accepts ASCII letters and digits, ``_ - . /`` and spaces in a key, and no key that reads as
    another path (``a//b``, ``a/./b``, a trailing ``/``). Any other character becomes ``_`` (``wind
    speed (m/s)`` gives ``wind speed _m/s_``), so does an empty, ``.`` or ``..`` path segment; a key
    longer than ``MAX_METRIC_KEY`` is cut and ends with a hash of the name, so it stays distinct.
    """
    import hashlib
    import re

    text = re.sub(r"[^A-Za-z0-9_\-. /]", "_", str(name))
    key = "/".join("_" if part in ("", ".", "..") else part for part in text.split("/"))
    if key.startswith(".."):
        key = "_" + key[1:]
    if len(key) > MAX_METRIC_KEY:
        digest = hashlib.sha256(str(name).encode()).hexdigest()[:12]
        key = f"{key[: MAX_METRIC_KEY - 13].rstrip('/')}_{digest}"
    return key


def load_model(uri: str, flavor: str = "sklearn") -> Any:
    """Load a logged model with MLflow's ``sklearn`` or ``pyfunc`` flavour."""
    import mlflow

    from airflow_mlc.core.skops_import import import_skops

    import_skops()
    loader = mlflow.pyfunc.load_model if flavor == "pyfunc" else mlflow.sklearn.load_model
    return loader(uri)
