"""The model spec: one YAML file per model, validated by a typed model.

This module is imported when DAG files are parsed, so it only uses pydantic and PyYAML.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, NamedTuple

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from airflow_mlc.errors import SpecError

#: Metrics the evaluation computes, by task, each with whether higher values are better.
#: Binary ``precision``/``recall``/``f1`` are of the positive class; multi-class ones are macro averages.
REGRESSION_METRICS = {"rmse": False, "mae": False, "r2": True, "mape": False}
CLASSIFICATION_METRICS = {
    "accuracy": True,
    "balanced_accuracy": True,
    "f1": True,
    "precision": True,
    "recall": True,
    "f1_weighted": True,
    "f1_macro": True,
    "roc_auc": True,
    "pr_auc": True,
    "log_loss": False,
}
METRICS_BY_TASK: dict[str, dict[str, bool]] = {
    "regression": REGRESSION_METRICS,
    "classification": CLASSIFICATION_METRICS,
}
LOWER_IS_BETTER = {name for metrics in METRICS_BY_TASK.values() for name, higher in metrics.items() if not higher}
#: Metrics computed from the model's scores: ``predict_proba``, or ``decision_function`` for the ranking ones.
SCORE_METRICS = {"roc_auc", "pr_auc", "log_loss"}
#: Metrics that need probabilities (``predict_proba``); a decision function does not do.
PROBABILITY_METRICS = {"log_loss"}
#: Units of an integer time column.
TIME_UNITS = ("year", "s", "ms")
SPEC_SUFFIXES = (".yaml", ".yml")
#: The kinds of DAG every valid spec gets, ``mlc_<name>_<kind>`` (see ``ModelLifecycleSpec.dag_ids``).
DAG_KINDS = ("train", "monitor", "predict", "rollback")
#: PyYAML's safe loader in C (libyaml) when PyYAML has it, which parses a spec several times faster.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Strict(BaseModel):
    """Unknown fields are errors, so a typo in a spec never passes silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSpec(_Strict):
    """Where the raw data comes from: a file (local or ``s3://``) or a SQL query."""

    path: str | None = None
    format: Literal["csv", "parquet"] | None = None
    sql: str | None = None
    url: str | None = Field(None, description="SQLAlchemy URL, for a query without an Airflow connection.")
    conn_id: str | None = Field(None, description="Airflow connection: an AWS one for s3:// paths, a SQL one for sql.")
    time_column: str | None = None
    time_format: str | None = Field(
        None,
        description="strftime format of a text time column, e.g. '%d/%m/%Y' for day-first dates; default: ISO 8601.",
    )
    time_unit: Literal["year", "s", "ms"] | None = Field(
        None, description="Unit of an integer time column: a calendar year, or seconds or milliseconds since 1970."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> SourceSpec:
        if (self.time_format or self.time_unit) and not self.time_column:
            raise ValueError("source.time_format and source.time_unit describe source.time_column, which is not set")
        if self.time_format and self.time_unit:
            raise ValueError("give source.time_format (text times) or source.time_unit (integer times), not both")
        if self.time_format and "%" not in self.time_format:
            raise ValueError(f"time_format {self.time_format!r} is not a strftime format such as '%d/%m/%Y'")
        if (self.path is None) == (self.sql is None):
            raise ValueError("give exactly one of 'path' (a CSV or Parquet file) or 'sql' (a query)")
        if self.sql is not None and self.conn_id is None and self.url is None:
            raise ValueError("a 'sql' source needs 'conn_id' (an Airflow connection) or 'url' (a SQLAlchemy URL)")
        if self.path is not None and self.format is None and not self.path.endswith((".csv", ".parquet", ".pq")):
            raise ValueError(f"cannot tell the format of {self.path!r}: set 'format' to csv or parquet")
        return self

    @property
    def file_format(self) -> str:
        """The file format, from ``format`` or the path's suffix."""
        if self.format:
            return self.format
        return "csv" if str(self.path).endswith(".csv") else "parquet"


class FeaturesSpec(_Strict):
    numeric: list[str] = []
    categorical: list[str] = []

    @model_validator(mode="after")
    def _some_features(self) -> FeaturesSpec:
        if not self.numeric and not self.categorical:
            raise ValueError("name at least one numeric or categorical feature")
        both = set(self.numeric) & set(self.categorical)
        if both:
            raise ValueError(f"columns listed as both numeric and categorical: {sorted(both)}")
        return self

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]


class SearchSpec(_Strict):
    """A cross-validated hyperparameter search over the estimator's parameters."""

    method: Literal["grid", "random"] = "grid"
    space: dict[str, list[Any]]
    cv: int = Field(3, ge=2)
    n_iter: int = Field(10, ge=1, description="Candidates sampled by a random search.")
    scoring: str | None = Field(None, description="A scikit-learn scorer name; defaults to the gate metric.")

    @field_validator("space")
    @classmethod
    def _non_empty(cls, space: dict[str, list[Any]]) -> dict[str, list[Any]]:
        if not space:
            raise ValueError("the search space is empty")
        for name, values in space.items():
            if not values:
                raise ValueError(f"no values to try for {name!r}")
        return space


class ModelSpec(_Strict):
    estimator: str = Field(description="Import path of a scikit-learn estimator class.")
    params: dict[str, Any] = {}
    search: SearchSpec | None = None
    threads: int | None = Field(
        None,
        ge=1,
        description="Native (OpenMP, BLAS) threads the training task may use; default: its pool slots. "
        "Every other task uses its pool slots (one by default).",
    )

    @field_validator("estimator")
    @classmethod
    def _dotted(cls, estimator: str) -> str:
        module, _, name = estimator.rpartition(".")
        if not module or not name.isidentifier():
            raise ValueError(f"{estimator!r} is not an import path such as sklearn.linear_model.Ridge")
        return estimator


class SplitSpec(_Strict):
    """How rows are divided into training and test rows.

    ``time``: the latest rows are the test rows. ``random``: each row's side is fixed by a stable hash
    of its ``key`` values and the seed (default key: the features and the target), so a row keeps its
    side across retrainings; with ``stratify``, every class of a classification reaches both sides.
    """

    method: Literal["random", "time"] = "random"
    test_size: float = Field(0.2, gt=0, lt=1)
    seed: int = 42
    key: list[str] | None = Field(
        None,
        description=(
            "Source columns whose values decide a row's side (e.g. an entity id, which need not be a feature); "
            "default: the features and the target."
        ),
    )
    stratify: bool = Field(True, description="Keep each class's share on both sides of a random classification split.")


#: The group metrics of ``gates.fairness``, by task (docs/governance.md), each measured per group by fairlearn.
FAIRNESS_METRICS = {
    "classification": (
        "selection_rate",
        "recall",
        "false_positive_rate",
        "false_negative_rate",
        "precision",
        "error_rate",
        "accuracy",
    ),
    "regression": ("mae", "rmse", "mean_prediction"),
}
#: Fairness metrics of one class: they need a binary classification and its positive class.
BINARY_FAIRNESS_METRICS = {"selection_rate", "recall", "false_positive_rate", "false_negative_rate", "precision"}


class FairnessSpec(_Strict):
    """A bias gate: the gap of a metric between the groups of each sensitive column."""

    sensitive: list[str] = Field(
        min_length=1,
        description="Columns whose values define the groups, each judged on its own; they need not be features.",
    )
    metric: str = Field("selection_rate", description="The metric compared between groups (docs/governance.md).")
    max_gap: float = Field(gt=0, description="Largest difference of the metric between two groups.")
    min_group_rows: int = Field(
        30, ge=1, description="Groups with fewer test rows are reported but not judged (their metric is mostly noise)."
    )


class SlicesSpec(_Strict):
    """The gate metric per value of chosen columns, against the champion on the same rows."""

    columns: list[str] = Field(min_length=1, description="Columns whose values are the slices.")
    min_rows: int = Field(30, ge=2, description="Slices with fewer compared rows are reported but not judged.")
    max_loss: float | None = Field(
        None,
        gt=0,
        description=(
            "Block a candidate that is, on some slice, worse than the champion by more than this share of the "
            "champion's value and significantly so; None: report the slices only."
        ),
    )


class ExplanationsSpec(_Strict):
    """Permutation importance of each candidate on its test rows, and a leak guard on its top features."""

    importance: bool = Field(True, description="Compute and log each candidate's permutation importance.")
    repeats: int = Field(5, ge=1, le=100, description="Shuffles of each feature.")
    max_rows: int = Field(5000, ge=50, description="Test rows used at most (a seeded sample of them).")
    top: int = Field(3, ge=1, description="How many of the most important features are checked for forbidden ones.")
    forbidden: list[str] = Field(
        [],
        description="Features that must not be among the top ones (an identifier, a copy of the target): "
        "a candidate for which one is blocks its promotion.",
    )


class GatesSpec(_Strict):
    """What a candidate must reach to become champion."""

    metric: str
    max: float | None = Field(None, description="Upper bound (for an error metric such as rmse).")
    min: float | None = Field(None, description="Lower bound (for a score such as r2 or f1).")
    min_improvement: float = Field(
        0.0, ge=0, description="Relative margin by which the candidate must beat the champion (0.01 = 1%)."
    )
    confidence: float = Field(
        0.95,
        ge=0.5,
        lt=1,
        description="Confidence of the paired bootstrap interval whose lower bound must show an improvement.",
    )
    min_rows: int = Field(30, ge=2, description="Fewest rows a champion/challenger comparison may rest on.")
    bootstrap_rounds: int = Field(1000, ge=100, le=100_000, description="Resamples of the paired bootstrap.")
    beat_baseline: bool = Field(
        True,
        description=(
            "A candidate must be significantly better than a trivial model (the training rows' most frequent "
            "class and class shares, or their mean) on its test rows."
        ),
    )
    fairness: FairnessSpec | None = Field(None, description="A bias gate between groups of sensitive columns.")
    slices: SlicesSpec | None = Field(None, description="The gate metric per slice, against the champion.")
    absolute_with_champion: Literal["block", "allow_if_better"] = Field(
        "allow_if_better",
        description=(
            "Once a champion exists, a candidate failing max/min may still replace it when the champion fails "
            "the same bound on the same rows and the candidate is significantly better (allow_if_better), "
            "or never (block)."
        ),
    )

    @model_validator(mode="after")
    def _ordered_bounds(self) -> GatesSpec:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"gates.min ({self.min:g}) is above gates.max ({self.max:g}): no value can pass")
        return self


class RangeSpec(_Strict):
    min: float | None = None
    max: float | None = None


class ContractSpec(_Strict):
    """The data contract checked by the validate step."""

    min_rows: int = Field(1, ge=1)
    max_null_share: float = Field(0.0, ge=0, le=1)
    ranges: dict[str, RangeSpec] = {}
    categories: dict[str, list[Any]] = {}


class CleaningSpec(_Strict):
    drop_duplicates: bool = False
    drop_missing_target: bool = True


class WindowSpec(_Strict):
    lookback_days: int | None = Field(
        None, ge=1, description="Training window length before the run's end; unset means all history."
    )


class ScheduleSpec(_Strict):
    """Cron expressions or presets (``@daily``); unset means the DAG runs only when triggered."""

    train: str | None = Field(None, description="Scheduled retraining; drift-triggered retraining needs no schedule.")
    monitor: str | None = Field(None, description="When the monitoring DAG checks the newest window.")
    predict: str | None = Field(None, description="When the prediction DAG scores the newest window.")


class ColumnDriftSpec(_Strict):
    """A column's own drift test: an Evidently stattest name and its threshold."""

    method: str | None = None
    threshold: float | None = Field(None, gt=0)


class DriftSpec(_Strict):
    """How the monitoring DAG decides that the data drifted (Evidently ``DataDriftPreset``)."""

    columns: list[str] | None = Field(None, description="Columns compared; default: every feature.")
    method: str | None = Field(None, description="Stattest for every column (default: Evidently picks per column).")
    threshold: float | None = Field(None, gt=0, description="Threshold for every column (default: the method's).")
    per_column: dict[str, ColumnDriftSpec] = {}
    drift_share: float = Field(0.5, gt=0, le=1, description="Share of drifted columns at which the data drifted.")
    reference: str | None = Field(
        None, description="A fixed reference dataset (CSV or Parquet, local or s3://); default: the champion's data."
    )


class WaitSpec(_Strict):
    """How the monitoring DAG's data sensor waits."""

    poke_interval_seconds: float = Field(60, gt=0)
    timeout_hours: float = Field(6, gt=0)
    deferrable: bool = True


class MonitoringSpec(_Strict):
    """The monitoring DAG: drift and quality checks on the newest window, and when they ask for retraining."""

    window_days: int = Field(7, ge=1, description="Length of the monitored window, ending at the run's end.")
    min_rows: int = Field(1, ge=1, description="Rows the window needs before the data sensor lets the run go on.")
    drift: DriftSpec = DriftSpec()
    quality_tolerance: float | None = Field(
        0.2,
        ge=0,
        description="Relative loss of the gate metric vs. the champion's evaluation that asks for retraining.",
    )
    cooldown_days: float = Field(
        7, ge=0, description="No new retraining request for a window ending this close (in data time) to the last."
    )
    wait: WaitSpec = WaitSpec()


class RolloutSpec(_Strict):
    """How a challenger is exposed in batch inference, and judged on live data, before it is champion."""

    mode: Literal["off", "shadow", "canary"] = Field(
        "off",
        description="shadow: the version 'challenger' points at also scores every interval, beside the served "
        "model, into shadow.parquet, never served. canary: it serves a share of the rows (by a stable hash of "
        "'key'), one step of 'steps' at a time. Both: the monitoring DAG judges it on live labelled rows.",
    )
    key: list[str] = Field([], description="canary: columns whose stable hash picks the rows the challenger serves.")
    steps: list[float] = Field(
        [0.05, 0.25, 0.5, 1.0], min_length=1, description="canary: the shares of rows served, one step per judgement."
    )

    @model_validator(mode="after")
    def _canary(self) -> RolloutSpec:
        if self.mode == "canary" and not self.key:
            raise ValueError("prediction.rollout.mode canary needs prediction.rollout.key (columns naming an entity)")
        rising = all(a < b for a, b in zip(self.steps, self.steps[1:], strict=False))
        if not rising or any(not 0 < share <= 1 for share in self.steps):
            raise ValueError(f"prediction.rollout.steps must rise strictly within (0, 1]: {self.steps}")
        return self


#: The columns batch inference writes beside the kept ones: names a kept column cannot have.
PREDICTION_OUTPUT_COLUMNS = ("prediction", "model_version", "role", "run_id", "window_start", "window_end")


class PredictionSpec(_Strict):
    """Batch inference: which window the prediction DAG scores, how, and where the predictions go."""

    window_days: int = Field(1, ge=1, description="Length of the scored window, ending at the run's end.")
    chunk_rows: int = Field(100_000, ge=1, description="Rows scored at a time; bounds the memory used.")
    keep_columns: list[str] | None = Field(
        None, description="Source columns copied beside each prediction; default: the time column, if any."
    )
    model_version: str | None = Field(None, description="A pinned version; default: the one 'champion' points at.")
    table: str | None = Field(None, description="A SQL table that also receives the predictions.")
    conn_id: str | None = Field(None, description="Airflow SQL connection of the table.")
    rollout: RolloutSpec = RolloutSpec()

    @field_validator("model_version", mode="before")
    @classmethod
    def _version_text(cls, version: Any) -> Any:
        return str(version) if isinstance(version, int) else version

    @field_validator("keep_columns")
    @classmethod
    def _not_an_output_column(cls, columns: list[str] | None) -> list[str] | None:
        taken = [column for column in columns or [] if column in PREDICTION_OUTPUT_COLUMNS]
        if taken:
            raise ValueError(
                f"prediction.keep_columns: {taken} would collide with the columns written beside each prediction "
                f"{list(PREDICTION_OUTPUT_COLUMNS)}; rename them in the source"
            )
        return columns

    @model_validator(mode="after")
    def _table_needs_connection(self) -> PredictionSpec:
        if self.table and not self.conn_id:
            raise ValueError("prediction.table needs prediction.conn_id (an Airflow SQL connection)")
        return self


class StorageSpec(_Strict):
    artifact_root: str | None = Field(
        None, description="Local folder or s3:// prefix; defaults to $MLC_ARTIFACT_ROOT or $AIRFLOW_HOME/mlc/artifacts."
    )
    conn_id: str | None = Field(None, description="AWS connection for an s3:// artifact root.")


class MlflowSpec(_Strict):
    conn_id: str = "mlflow_default"
    experiment: str | None = None
    registered_model: str | None = None

    @field_validator("registered_model")
    @classmethod
    def _searchable(cls, name: str | None) -> str | None:
        if name is not None and ("'" in name or '"' in name):
            raise ValueError(
                f"mlflow.registered_model: {name!r} holds a quote; MLflow's registry search cannot find such a "
                "name reliably, so its versions and aliases would be missed"
            )
        return name


#: The tasks of a spec's DAGs, by task id (the phase names of ``tasks``): the training DAG's, then the monitoring
#: DAG's (which has an ``ingest`` too), the prediction DAG's (which has a ``wait_for_data`` too), the rollback DAG's.
#: A phase's settings apply to every task with its id, in whichever of the DAGs it is.
TASK_PHASES = (
    "ingest",
    "validate",
    "prepare",
    "train",
    "evaluate",
    "register",
    "wait_for_data",
    "drift",
    "quality",
    "request_retraining",
    "judge_rollout",
    "wait_for_champion",
    "predict",
    "rollback",
)
#: The entry of ``tasks`` that applies to every task, field by field, unless the task's own phase sets the field.
DEFAULT_PHASE = "default"


class TaskSettingsSpec(_Strict):
    """Where and how the tasks of one phase run: Airflow's own task arguments, given to the operator as they are.

    A field left out keeps Airflow's default (``[operators] default_queue``, ``default_pool``, one slot, ...).
    """

    queue: str | None = Field(
        None, min_length=1, description="The executor queue (a Celery worker serves the queues it is started with)."
    )
    pool: str | None = Field(
        None, min_length=1, description="An Airflow pool; it must exist, or the task is never scheduled."
    )
    pool_slots: int | None = Field(
        None, ge=1, description="Slots of the pool the task takes; also its native threads unless model.threads."
    )
    priority_weight: int | None = Field(
        None, description="Priority among the tasks waiting for a slot (Airflow's weight rule still applies)."
    )
    retries: int | None = Field(None, ge=0, description="Retries after a failure that may pass on a new try.")
    executor_config: dict[str, Any] | None = Field(
        None,
        description="Passed to the executor as it is, e.g. {pod_template_file: ...} or {pod_override: <a pod "
        "manifest>} for the KubernetesExecutor.",
    )

    def arguments(self) -> dict[str, Any]:
        """The fields that are set, as keyword arguments of an operator."""
        return {name: value for name, value in self if value is not None}


def _known_phases(tasks: Any) -> Any:
    """Refuse a ``tasks`` entry that names no task of the spec's DAGs (nor ``default``)."""
    if isinstance(tasks, dict):
        allowed = (DEFAULT_PHASE, *TASK_PHASES)
        for name in tasks:
            if name not in allowed:
                raise ValueError(
                    f"{name!r} is not a phase: the entries are task ids of the model's DAGs or {DEFAULT_PHASE!r} "
                    f"(one of: {', '.join(allowed)})"
                )
    return tasks


class ModelLifecycleSpec(_Strict):
    """Everything airflow-mlc needs to know about one model."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    description: str = ""
    task: Literal["regression", "classification"]
    source: SourceSpec
    target: str
    positive_class: str | int | bool | None = Field(
        None,
        description="The positive class of a binary classification; default: the minority class of the training rows.",
    )
    features: FeaturesSpec
    model: ModelSpec
    split: SplitSpec = SplitSpec()
    gates: GatesSpec
    contract: ContractSpec = ContractSpec()
    cleaning: CleaningSpec = CleaningSpec()
    window: WindowSpec = WindowSpec()
    schedule: ScheduleSpec = ScheduleSpec()
    monitoring: MonitoringSpec = MonitoringSpec()
    prediction: PredictionSpec = PredictionSpec()
    explanations: ExplanationsSpec = ExplanationsSpec()
    storage: StorageSpec = StorageSpec()
    mlflow: MlflowSpec = MlflowSpec()
    tags: list[str] = []
    tasks: dict[str, TaskSettingsSpec] = Field(
        {},
        description="Per phase (a task id, or 'default' for every task): queue, pool, pool_slots, priority_weight, "
        "retries and executor_config of its tasks.",
    )

    @field_validator("tasks", mode="before")
    @classmethod
    def _phases(cls, tasks: Any) -> Any:
        return _known_phases(tasks)

    def task_settings(self, task_id: str) -> dict[str, Any]:
        """The ``tasks`` settings of the task ``task_id``: those of ``default``, each replaced by the task's own.

        Args:
            task_id: The task's id, which is its phase.

        Returns:
            Keyword arguments of its operator: only the fields the spec sets.
        """
        default, own = self.tasks.get(DEFAULT_PHASE), self.tasks.get(task_id)
        return {**(default.arguments() if default else {}), **(own.arguments() if own else {})}

    @model_validator(mode="after")
    def _consistent(self) -> ModelLifecycleSpec:
        if self.target in self.features.columns:
            raise ValueError(f"the target {self.target!r} is also listed as a feature")
        metric = self.gates.metric
        if metric not in METRICS_BY_TASK[self.task]:
            allowed = ", ".join(sorted(METRICS_BY_TASK[self.task]))
            raise ValueError(f"gates.metric {metric!r} is not a {self.task} metric (one of: {allowed})")
        if self.positive_class is not None and self.task != "classification":
            raise ValueError("positive_class applies to a classification only")
        fairness = self.gates.fairness
        if fairness is not None and fairness.metric not in FAIRNESS_METRICS[self.task]:
            allowed = ", ".join(FAIRNESS_METRICS[self.task])
            raise ValueError(f"gates.fairness.metric {fairness.metric!r} is not a {self.task} one (one of: {allowed})")
        unknown = [c for c in self.explanations.forbidden if c not in self.features.columns]
        if unknown:
            raise ValueError(f"explanations.forbidden names columns that are not features: {unknown}")
        if self.split.method == "time" and not self.source.time_column:
            raise ValueError("split.method 'time' needs source.time_column")
        if self.split.key is not None and not self.split.key:
            raise ValueError("split.key is empty: name the columns that identify a row, or leave it out")
        for column in [*self.contract.ranges, *self.contract.categories]:
            if column not in self.columns:
                raise ValueError(f"the contract names {column!r}, which is neither a feature nor the target")
        for column in self.contract.ranges:
            if column not in self.numeric_columns:
                raise ValueError(f"contract.ranges.{column}: ranges apply to numeric features or a regression target")
        for column in self.contract.categories:
            if column not in self.features.categorical:
                raise ValueError(f"contract.categories.{column}: allowed values apply to categorical features only")
        for column in [*(self.monitoring.drift.columns or []), *self.monitoring.drift.per_column]:
            if column not in self.columns:
                raise ValueError(f"monitoring.drift names {column!r}, which is neither a feature nor the target")
        return self

    @property
    def drift_columns(self) -> list[str]:
        """The columns the drift report compares."""
        return list(self.monitoring.drift.columns or self.features.columns)

    @property
    def dag_ids(self) -> dict[str, str]:
        """The ids of this model's DAGs by kind (``DAG_KINDS``): ``mlc_<name>_train`` and so on."""
        return {kind: f"mlc_{self.name}_{kind}" for kind in DAG_KINDS}

    @property
    def retrain_asset_uri(self) -> str:
        """The Airflow Asset whose events ask for a retraining of this model."""
        return f"mlc://{self.name}/retrain"

    @property
    def numeric_columns(self) -> list[str]:
        """Numeric features, plus the target of a regression."""
        return [*self.features.numeric, *([self.target] if self.task == "regression" else [])]

    @property
    def columns(self) -> list[str]:
        """Feature columns, then the target."""
        return [*self.features.columns, self.target]

    @property
    def registered_model_name(self) -> str:
        return self.mlflow.registered_model or self.name

    @property
    def experiment_name(self) -> str:
        return self.mlflow.experiment or f"mlc/{self.name}"

    @property
    def monitoring_experiment_name(self) -> str:
        """The MLflow experiment of the monitoring runs (drift and quality reports)."""
        return f"{self.experiment_name}/monitoring"

    @property
    def registry_experiment_name(self) -> str:
        """The MLflow experiment holding the history of champion moves (one run per move)."""
        return f"{self.experiment_name}/champion-moves"

    @property
    def higher_is_better(self) -> bool:
        return self.gates.metric not in LOWER_IS_BETTER

    @property
    def origin(self) -> str:
        """The file the spec was read from (or what the caller named it), for error messages."""
        return self._origin

    _origin: str = PrivateAttr("<spec>")


def _format_errors(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field (a typo?)"
        lines.append(f"{where}: {message}")
    return "; ".join(lines)


def parse_spec(data: Any, origin: str = "<spec>", base_dir: Path | None = None) -> ModelLifecycleSpec:
    """Validate a spec given as a mapping; relative local data paths are resolved against ``base_dir``."""
    if not isinstance(data, dict):
        raise SpecError(f"{origin}: a spec must be a YAML mapping, not {type(data).__name__}")
    try:
        spec = ModelLifecycleSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"{origin}: {_format_errors(exc)}") from None
    spec._origin = origin
    if base_dir is None:
        return spec
    source = spec.source.model_copy(update={"path": _resolve(spec.source.path, base_dir)})
    drift = spec.monitoring.drift.model_copy(update={"reference": _resolve(spec.monitoring.drift.reference, base_dir)})
    monitoring = spec.monitoring.model_copy(update={"drift": drift})
    return spec.model_copy(update={"source": source, "monitoring": monitoring})


def _resolve(path: str | None, base_dir: Path) -> str | None:
    """A relative local path made absolute against the spec's folder; URIs and absolute paths unchanged."""
    if not path or "://" in path or os.path.isabs(path):
        return path
    return str((base_dir / path).resolve())


def read_yaml(text: str) -> Any:
    """The data of a YAML document, read by ``YAML_LOADER``.

    Raises:
        yaml.YAMLError: The text is not YAML; the message is the pure-Python loader's, which quotes the line.
    """
    try:
        return yaml.load(text, Loader=YAML_LOADER)
    except yaml.YAMLError:
        return yaml.safe_load(text)


def load_spec(path: str | os.PathLike[str]) -> ModelLifecycleSpec:
    """Read and validate one spec file."""
    file = Path(path)
    try:
        data = read_yaml(file.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"{file}: cannot read the spec: {exc}") from None
    return parse_spec(data, origin=str(file), base_dir=file.parent)


class SpecFolder(NamedTuple):
    """What a folder of spec files holds: the valid specs, and why each other file is invalid.

    Attributes:
        specs: The valid specs, in file-name order.
        errors: Per invalid file, its ``SpecError`` (``<file>: <field>: <problem>``), in file-name order.
    """

    specs: list[ModelLifecycleSpec]
    errors: dict[Path, SpecError]


def spec_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The spec files (``*.yaml``, ``*.yml``) in a folder, sorted by name; hidden files are skipped.

    Args:
        folder: The folder to list.

    Returns:
        The paths of the spec files.
    """
    return sorted(
        p for p in Path(folder).iterdir() if p.suffix in SPEC_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def load_specs_reporting(folder: str | os.PathLike[str]) -> SpecFolder:
    """Every valid spec in a folder, and the error of every invalid one; one bad file costs only itself.

    Two specs with the same name: the first by file name loads, the second is an error naming both files.

    Args:
        folder: The folder of the spec files.

    Returns:
        The valid specs and, per invalid file, its error.
    """
    specs: dict[str, tuple[Path, ModelLifecycleSpec]] = {}
    errors: dict[Path, SpecError] = {}
    for file in spec_files(folder):
        try:
            spec = load_spec(file)
        except SpecError as exc:
            errors[file] = exc
            continue
        except Exception as exc:  # e.g. a file that is not text: still only this file is lost
            errors[file] = SpecError(f"{file}: cannot read the spec: {type(exc).__name__}: {exc}")
            continue
        if spec.name in specs:
            first = specs[spec.name][0]
            errors[file] = SpecError(f"{file}: name: {spec.name!r} is already used by {first}, which loads instead")
            continue
        specs[spec.name] = (file, spec)
    return SpecFolder([spec for _, spec in specs.values()], errors)


def load_specs(folder: str | os.PathLike[str]) -> list[ModelLifecycleSpec]:
    """Every spec in a folder, all valid, or an error; for checks that must fail on any bad spec.

    Args:
        folder: The folder of the spec files.

    Returns:
        The specs, in file-name order.

    Raises:
        SpecError: A file is invalid or reuses a name; the message has one line per invalid file.
    """
    loaded = load_specs_reporting(folder)
    if loaded.errors:
        raise SpecError("\n".join(str(error) for error in loaded.errors.values()))
    return loaded.specs
