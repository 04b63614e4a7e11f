"""Monitor: Evidently data-drift and model-quality reports on the newest window, reduced to small summaries."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from airflow_mlc.core import tracking
from airflow_mlc.core.metrics import score_model
from airflow_mlc.errors import BadInputError, DataError, EmptyWindowError
from airflow_mlc.spec import LOWER_IS_BETTER, ModelLifecycleSpec


class NothingToMonitorError(BadInputError):
    """No champion exists yet and the spec names no fixed reference: there is nothing to compare with."""


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    method: str
    threshold: float | None
    score: float
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    """The drift verdict: the dataset drifted when the share of drifted columns reaches ``drift_share``."""

    detected: bool
    drifted_share: float
    drift_share: float
    drifted_columns: dict[str, float]
    columns: list[ColumnDrift]
    reference_rows: int
    current_rows: int

    def summary(self) -> dict[str, Any]:
        """What goes to XCom and into the retraining event: no per-column details beyond the drifted ones."""
        return {
            "drift_detected": self.detected,
            "drifted_share": round(self.drifted_share, 4),
            "drift_share_threshold": self.drift_share,
            "drifted_columns": {k: round(v, 4) for k, v in self.drifted_columns.items()},
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
        }


@dataclass(frozen=True)
class QualityResult:
    """The champion's metrics on the labelled rows of the window against those it had at evaluation."""

    labelled_rows: int
    metric: str
    live_metrics: dict[str, float] = field(default_factory=dict)
    baseline: float | None = None
    degradation: float | None = None
    tolerance: float | None = None
    degraded: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_columns(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{what}: columns {missing} are missing (columns present: {list(frame.columns)})")


def _definition(spec: ModelLifecycleSpec, columns: list[str], **tasks: Any) -> Any:
    from evidently import DataDefinition

    numeric = [c for c in columns if c in spec.numeric_columns]
    categorical = [c for c in columns if c not in numeric]
    return DataDefinition(numerical_columns=numeric, categorical_columns=categorical, **tasks)


def _drift_preset(spec: ModelLifecycleSpec, columns: list[str]) -> Any:
    from evidently.presets import DataDriftPreset

    settings = spec.monitoring.drift
    methods = {c: s.method for c, s in settings.per_column.items() if s.method}
    thresholds = {c: s.threshold for c, s in settings.per_column.items() if s.threshold is not None}
    return DataDriftPreset(
        columns=columns,
        drift_share=settings.drift_share,
        method=settings.method,
        threshold=settings.threshold,
        per_column_method=methods or None,
        per_column_threshold=thresholds or None,
    )


def column_drifts(snapshot: Any) -> list[ColumnDrift]:
    """Per-column scores, methods and verdicts from a drift snapshot (its ``ValueDrift`` metrics and tests)."""
    content = snapshot.dict()
    verdicts = {
        t["metric_config"]["params"]["column"]: _status(t) != "SUCCESS"
        for t in content["tests"]
        if t["metric_config"]["params"].get("type", "").endswith("ValueDrift")
    }
    found = []
    for metric in content["metrics"]:
        config = metric["config"]
        if not config.get("type", "").endswith("ValueDrift"):
            continue
        column = config["column"]
        found.append(
            ColumnDrift(
                column, str(config.get("method")), config.get("threshold"), float(metric["value"]), verdicts[column]
            )
        )
    return found


def _status(test: dict[str, Any]) -> str:
    return str(getattr(test["status"], "value", test["status"]))


def drift_report(reference: pd.DataFrame, current: pd.DataFrame, spec: ModelLifecycleSpec) -> tuple[DriftResult, Any]:
    """Compare ``current`` with ``reference`` on the spec's drift columns; returns the verdict and the snapshot."""
    from evidently import Dataset, Report

    columns = spec.drift_columns
    if current.empty:
        raise EmptyWindowError("the monitored window holds no rows: there is nothing to compare")
    if reference.empty:
        raise DataError("the reference dataset holds no rows")
    _check_columns(current, columns, "the monitored window")
    _check_columns(reference, columns, "the reference dataset")
    definition = _definition(spec, columns)
    from evidently.legacy.calculations.stattests.registry import StatTestNotFoundError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            snapshot = Report([_drift_preset(spec, columns)], include_tests=True).run(
                reference_data=Dataset.from_pandas(reference[columns], data_definition=definition),
                current_data=Dataset.from_pandas(current[columns], data_definition=definition),
            )
        except StatTestNotFoundError as exc:
            raise BadInputError(f"monitoring.drift: {exc}") from None
    drifts = column_drifts(snapshot)
    drifted = {d.column: d.score for d in drifts if d.drifted}
    share = len(drifted) / len(drifts)
    threshold = spec.monitoring.drift.drift_share
    result = DriftResult(
        detected=share >= threshold,
        drifted_share=share,
        drift_share=threshold,
        drifted_columns=drifted,
        columns=drifts,
        reference_rows=len(reference),
        current_rows=len(current),
    )
    return result, snapshot


def reference_uri(spec: ModelLifecycleSpec, champion: Any | None) -> str:
    """Where the drift reference lives: the spec's fixed reference, else the champion's training data."""
    if spec.monitoring.drift.reference:
        return spec.monitoring.drift.reference
    if champion is None:
        raise NothingToMonitorError(
            f"model {spec.registered_model_name!r} has no champion yet and monitoring.drift.reference is not set"
        )
    uri = champion.tags.get(tracking.TAG_TRAIN_DATA)
    if not uri:
        raise BadInputError(
            f"champion version {champion.version} of {spec.registered_model_name!r} records no training data "
            f"({tracking.TAG_TRAIN_DATA}); set monitoring.drift.reference in the spec"
        )
    return str(uri)


def relative_loss(live: float, baseline: float, metric: str) -> float:
    """How much worse ``live`` is than ``baseline``, relative to it (negative when it got better)."""
    change = (live - baseline) if metric in LOWER_IS_BETTER else (baseline - live)
    return change / abs(baseline) if baseline else (0.0 if change <= 0 else float("inf"))


def quality_check(
    spec: ModelLifecycleSpec, model: Any, current: pd.DataFrame, baseline: float | None
) -> tuple[QualityResult, Any | None]:
    """Score the champion on the window's labelled rows and compare the gate metric with ``baseline``.

    A window without labels gives ``labelled_rows == 0`` and no report: quality is simply not known yet.
    """
    metric = spec.gates.metric
    _check_columns(current, spec.features.columns, "the monitored window")
    if spec.target not in current.columns:
        return QualityResult(0, metric), None
    labelled = current[current[spec.target].notna()]
    if labelled.empty:
        return QualityResult(0, metric), None
    live = score_model(model, labelled, spec.features.columns, spec.target, spec.task)
    tolerance = spec.monitoring.quality_tolerance
    loss = relative_loss(live[metric], baseline, metric) if baseline is not None and metric in live else None
    degraded = loss is not None and tolerance is not None and loss > tolerance
    result = QualityResult(len(labelled), metric, live, baseline, loss, tolerance, degraded)
    return result, _quality_snapshot(spec, model, labelled)


def _quality_snapshot(spec: ModelLifecycleSpec, model: Any, labelled: pd.DataFrame) -> Any:
    """Evidently's regression or classification preset on the labelled rows and the champion's predictions."""
    from evidently import BinaryClassification, Dataset, MulticlassClassification, Regression, Report
    from evidently.presets import ClassificationPreset, RegressionPreset

    frame = labelled[spec.columns].assign(prediction=model.predict(labelled[spec.features.columns]))
    columns = spec.features.columns
    if spec.task == "regression":
        definition = _definition(spec, columns, regression=[Regression(target=spec.target, prediction="prediction")])
        definition.numerical_columns = [*definition.numerical_columns, spec.target, "prediction"]
        preset: Any = RegressionPreset()
    else:
        kind = BinaryClassification if frame[spec.target].nunique() <= 2 else MulticlassClassification
        definition = _definition(
            spec, columns, classification=[kind(target=spec.target, prediction_labels="prediction")]
        )
        definition.categorical_columns = [*definition.categorical_columns, spec.target, "prediction"]
        preset = ClassificationPreset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Report([preset]).run(
            current_data=Dataset.from_pandas(frame, data_definition=definition), reference_data=None
        )


def publish_report(snapshot: Any, html_uri: str, options: dict[str, Any] | None, client: Any, run_id: str) -> str:
    """Write the report as HTML and JSON at ``html_uri`` (under the artifact root) and log both to the MLflow run."""
    import tempfile
    from pathlib import Path

    from airflow_mlc.core.validate import save_report

    save_report(snapshot, html_uri, options)
    name = html_uri.rsplit("/", 1)[-1].removesuffix(".html")
    with tempfile.TemporaryDirectory() as folder:
        save_report(snapshot, str(Path(folder) / f"{name}.html"))
        client.log_artifacts(run_id, folder, name)
    return html_uri
