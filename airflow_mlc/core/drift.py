"""Monitor: Evidently data-drift and model-quality reports on the newest window, reduced to small summaries."""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from airflow_mlc.core import storage, tracking
from airflow_mlc.core.compare import metric_interval, unpaired_comparison
from airflow_mlc.core.drift_stats import (
    CATEGORICAL,
    EFFECT_SIZE_ROWS,
    METHODS,
    NUMERIC,
    ColumnDrift,
    ColumnProfile,
    Columns,
    FrameColumns,
    ReferenceProfile,
    column_drift,
    load_reference_profile,
    profile_frame,
    sample_indices,
    store_reference_profile,
    take_rows,
)
from airflow_mlc.core.metrics import (
    Predictions,
    compute,
    compute_all,
    model_features,
    predict,
    predict_chunks,
    why_undefined,
)
from airflow_mlc.core.storage import Storage
from airflow_mlc.errors import BadInputError, DataError, EmptyWindowError
from airflow_mlc.spec import LOWER_IS_BETTER, ModelLifecycleSpec


class NothingToMonitorError(BadInputError):
    """No champion exists yet and the spec names no fixed reference: there is nothing to compare with."""


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
        """What goes to XCom: the verdict, and each column's method, threshold, score and verdict (``columns``).

        The retraining event takes the verdict and the drifted columns only.
        """
        return {
            "drift_detected": self.detected,
            "drifted_share": round(self.drifted_share, 4),
            "drift_share_threshold": self.drift_share,
            "drifted_columns": {k: round(v, 4) for k, v in self.drifted_columns.items()},
            "columns": [
                {
                    "column": c.column,
                    "method": c.method,
                    "threshold": c.threshold,
                    "score": round(c.score, 6),
                    "drifted": c.drifted,
                }
                for c in self.columns
            ],
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
        }


@dataclass(frozen=True)
class QualityResult:
    """The champion's metrics on the labelled rows of the window against those it had at evaluation.

    ``degradation`` is the gate metric's relative loss against ``baseline``; ``interval`` its
    bootstrap interval at ``confidence`` on the window's rows; ``change_interval`` the interval of the
    change against the champion's evaluation rows (positive: better), when those rows could be read.
    ``degraded`` holds only when the loss exceeds ``tolerance`` and the change is significant: the
    change interval lies below zero (else, without the evaluation rows, the interval lies wholly on
    the worse side of the baseline); ``reason``
    says what was decided and why (or why quality is not known). ``report`` says which Evidently
    report was built, ``report_problems`` which richer ones Evidently could not build for the window.
    """

    labelled_rows: int
    metric: str
    live_metrics: dict[str, float] = field(default_factory=dict)
    baseline: float | None = None
    degradation: float | None = None
    tolerance: float | None = None
    degraded: bool = False
    interval: tuple[float, float] | None = None
    change_interval: tuple[float, float] | None = None
    confidence: float | None = None
    positive_class: str | None = None
    reason: str = ""
    report: str = ""
    report_problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result["interval"] = list(self.interval) if self.interval is not None else None
        result["change_interval"] = list(self.change_interval) if self.change_interval is not None else None
        return result


def _check_columns(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    _check_names(list(frame.columns), columns, what)


def _check_names(present: list[str], columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in present]
    if missing:
        raise DataError(f"{what}: columns {missing} are missing (columns present: {present})")


def _definition(spec: ModelLifecycleSpec, columns: list[str], **tasks: Any) -> Any:
    from evidently import DataDefinition

    numeric = [c for c in columns if c in spec.numeric_columns]
    categorical = [c for c in columns if c not in numeric]
    return DataDefinition(numerical_columns=numeric, categorical_columns=categorical, **tasks)


#: Rows of each side the Evidently reports are built from: a larger side is sampled (seeded) down to it.
#: The verdicts and scores are computed on every row; only the HTML and JSON reports show the sample.
REPORT_SAMPLE_ROWS = 20_000

#: The seed of the report samples, so a re-run shows the same rows.
REPORT_SAMPLE_SEED = 0

#: Where the reference profiles live below the artifact root, one folder per reference URI.
PROFILE_FOLDER = "drift-profiles"


def drift_kinds(spec: ModelLifecycleSpec) -> dict[str, str]:
    """Each drift column's kind: numeric for the spec's numeric columns, categorical for the others."""
    return {c: NUMERIC if c in spec.numeric_columns else CATEGORICAL for c in spec.drift_columns}


def _column_test(spec: ModelLifecycleSpec, column: str) -> tuple[str | None, float | None, bool]:
    """The spec's method and threshold for ``column`` (None: Evidently's default), and whether both are left to it."""
    settings = spec.monitoring.drift
    own = settings.per_column.get(column)
    method = (own.method if own is not None else None) or settings.method
    threshold = own.threshold if own is not None and own.threshold is not None else settings.threshold
    return method, threshold, method is None and threshold is None


def small_window(spec: ModelLifecycleSpec, column: str, reference_rows: int, current_rows: int) -> bool:
    """Whether ``column`` is judged by a p-value test because the monitored window is small.

    Evidently picks a column's test by the size of the reference alone: above 1,000 rows, a normed
    Wasserstein or Jensen-Shannon distance at a fixed threshold of 0.1. On a window of a few hundred
    rows, sampling noise alone reaches that distance, so stationary windows would drift. When the window
    holds at most 1,000 rows, the columns the spec leaves to the default (no method and no threshold,
    neither at the top nor their own) are judged as Evidently judges small samples: Kolmogorov-Smirnov
    for numbers of more than 5 values, chi-square for other columns, a Z-test for two values
    (p-value threshold 0.05).
    """
    settings = spec.monitoring.drift
    if settings.method or settings.threshold is not None or reference_rows <= EFFECT_SIZE_ROWS:
        return False  # the spec chose, or Evidently already uses the small-sample tests
    return current_rows <= EFFECT_SIZE_ROWS and _column_test(spec, column)[2]


def _drift_preset(spec: ModelLifecycleSpec, drifts: list[ColumnDrift]) -> Any:
    from evidently.presets import DataDriftPreset

    return DataDriftPreset(
        columns=[d.column for d in drifts],
        drift_share=spec.monitoring.drift.drift_share,
        per_column_method={d.column: d.method for d in drifts},
        per_column_threshold={d.column: d.threshold for d in drifts if d.threshold is not None},
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
    """Compare ``current`` with ``reference`` on the spec's drift columns; returns the verdict and the snapshot.

    Both frames are in memory; :func:`reference_profile` and :func:`compare_with_profile` compare a
    window with a stored reference a column at a time.
    """
    columns = spec.drift_columns
    if current.empty:
        raise EmptyWindowError("the monitored window holds no rows: there is nothing to compare")
    if reference.empty:
        raise DataError("the reference dataset holds no rows")
    _check_columns(current, columns, "the monitored window")
    _check_columns(reference, columns, "the reference dataset")
    profile = profile_frame(reference, drift_kinds(spec), REPORT_SAMPLE_ROWS, REPORT_SAMPLE_SEED)
    return compare_with_profile(profile, FrameColumns(current), spec)


def compare_with_profile(
    reference: ReferenceProfile, current: Columns, spec: ModelLifecycleSpec
) -> tuple[DriftResult, Any]:
    """The drift verdict of every row of ``current`` against the reference's profile, and Evidently's report.

    The window is read a column at a time: each column is profiled, scored and let go before the next
    (:mod:`airflow_mlc.core.drift_stats`). The Evidently ``DataDriftPreset`` report, with the same method
    and threshold per column, is built from at most :data:`REPORT_SAMPLE_ROWS` rows of each side.

    Raises:
        EmptyWindowError: the window holds no rows.
        DataError: the window lacks a drift column, or a column holds no values.
        BadInputError: the spec names a method Evidently does not know or that does not fit the column.
    """
    result, sample = drift_verdict(reference, current, spec)
    return result, _drift_snapshot(spec, reference.sample, sample, result.columns)


def drift_verdict(
    reference: ReferenceProfile, current: Columns, spec: ModelLifecycleSpec
) -> tuple[DriftResult, pd.DataFrame]:
    """The verdict of :func:`compare_with_profile`, and the window's sample of rows for the report."""
    if current.rows == 0:
        raise EmptyWindowError("the monitored window holds no rows: there is nothing to compare")
    _check_names(current.names, list(reference.kinds), "the monitored window")
    rows = sample_indices(current.rows, REPORT_SAMPLE_ROWS, REPORT_SAMPLE_SEED)
    sample = {}
    drifts = []
    for column, kind in reference.kinds.items():
        data = current.column(column)
        sample[column] = take_rows(data, rows)
        profile = ColumnProfile.of(column, data, kind, "the monitored window")
        del data
        method, threshold, _ = _column_test(spec, column)
        small = small_window(spec, column, reference.rows, current.rows)
        drifts.append(column_drift(column, reference.column(column), profile, method, threshold, small))
    drifted = {d.column: d.score for d in drifts if d.drifted}
    share = len(drifted) / len(drifts)
    threshold = spec.monitoring.drift.drift_share
    result = DriftResult(
        detected=share >= threshold,
        drifted_share=share,
        drift_share=threshold,
        drifted_columns=drifted,
        columns=drifts,
        reference_rows=reference.rows,
        current_rows=current.rows,
    )
    return result, pd.DataFrame(sample)


def _drift_snapshot(
    spec: ModelLifecycleSpec, reference: pd.DataFrame, current: pd.DataFrame, drifts: list[ColumnDrift]
) -> Any:
    """Evidently's drift report of the samples, each column tested with the method and threshold of its verdict.

    A numeric column judged by a test of categories (chi-square or Z, which Evidently picks for few
    distinct values) is declared categorical, the only kind Evidently accepts these tests for by name.
    """
    from evidently import Dataset, Report

    columns = [d.column for d in drifts]
    definition = _definition(spec, columns)
    as_categories = {d.column for d in drifts if d.method in METHODS and NUMERIC not in METHODS[d.method].kinds}
    definition.numerical_columns = [c for c in definition.numerical_columns if c not in as_categories]
    definition.categorical_columns = [*definition.categorical_columns, *(c for c in columns if c in as_categories)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Report([_drift_preset(spec, drifts)], include_tests=True).run(
            reference_data=Dataset.from_pandas(reference[columns], data_definition=definition),
            current_data=Dataset.from_pandas(current[columns], data_definition=definition),
        )


def reference_profile(location: str, spec: ModelLifecycleSpec, artifacts: Storage) -> ReferenceProfile:
    """The reference's drift profile, read from the artifact root, or built and stored there first.

    The profile lives in ``<artifact root>/drift-profiles/<hash of the reference URI>/`` and is reused
    by every later run against the same reference (the same champion's training data) while the file
    keeps its size and modification time (ETag on S3) and the drift columns keep their kinds;
    otherwise it is built again. A Parquet reference is read a column at a time; a CSV file at once.

    Raises:
        DataError: the reference does not exist, cannot be read, holds no rows, or lacks a drift column.
    """
    options = artifacts.options
    storage.require_local_file(location)
    try:
        signature = storage.signature(location, options)
    except FileNotFoundError:
        raise DataError(f"file {location!r} does not exist") from None
    folder = artifacts.uri(PROFILE_FOLDER, hashlib.sha256(location.encode()).hexdigest()[:16])
    kinds = drift_kinds(spec)
    stored = load_reference_profile(folder, kinds, signature, options)
    if stored is not None:
        return stored
    with ExitStack() as stack:
        if location.endswith(".csv"):
            source: Columns = FrameColumns(storage.read_file(location, "csv", options))
        else:
            source = stack.enter_context(storage.ParquetColumns(location, options))
        if source.rows == 0:
            raise DataError("the reference dataset holds no rows")
        _check_names(source.names, list(kinds), "the reference dataset")
        store_reference_profile(source, kinds, folder, signature, REPORT_SAMPLE_ROWS, REPORT_SAMPLE_SEED, options)
    profile = load_reference_profile(folder, kinds, signature, options)
    if profile is None:  # only when another run rebuilt it at once for other columns
        raise DataError(f"the drift profile of {location!r} at {folder!r} changed while it was written; run again")
    return profile


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


#: Binary metrics that change when the other class is taken as positive.
ONE_CLASS_METRICS = {"precision", "recall", "f1", "pr_auc"}


def relative_loss(live: float, baseline: float, metric: str) -> float:
    """How much worse ``live`` is than ``baseline``, relative to it (negative when it got better)."""
    change = (live - baseline) if metric in LOWER_IS_BETTER else (baseline - live)
    return change / abs(baseline) if baseline else (0.0 if change <= 0 else float("inf"))


def wholly_worse(interval: tuple[float, float], baseline: float, metric: str) -> bool:
    """Whether even the best end of the metric's interval is worse than ``baseline``."""
    low, high = interval
    return low > baseline if metric in LOWER_IS_BETTER else high < baseline


def quality_baseline(run_metrics: Mapping[str, float], metric: str) -> float | None:
    """The gate metric a champion had when it was evaluated: ``eval_<metric>``, else ``test_<metric>``."""
    for key in (f"eval_{metric}", f"test_{metric}"):
        value = run_metrics.get(key)
        if value is not None and math.isfinite(value):
            return float(value)
    return None


def quality_check(
    spec: ModelLifecycleSpec,
    model: Any,
    current: pd.DataFrame | Columns,
    baseline: float | None,
    positive_class: Any = None,
    baseline_rows: pd.DataFrame | None = None,
) -> tuple[QualityResult, Any | None]:
    """Score the champion on the window's labelled rows and judge the gate metric against ``baseline``.

    The quality degraded when the gate metric lost more than ``monitoring.quality_tolerance``
    (relative) and its bootstrap interval (``gates.confidence``, ``gates.bootstrap_rounds``) lies
    wholly on the worse side of the baseline, on at least ``gates.min_rows`` labelled rows. A window
    without labels, with too few of them, or on which the gate metric is undefined (an AUC on rows of
    one class) is scored as far as it can be and not judged; ``reason`` says why.

    The window is read ``prediction.chunk_rows`` rows at a time, only the columns the model and the
    report need; what stays in memory is the labels and the model's outputs, and the report's sample.

    Args:
        spec: the model's spec.
        model: the champion, fitted.
        current: the window's rows, a frame or a file read by columns (``storage.ParquetColumns``);
            those with a target value are scored.
        baseline: the gate metric at the champion's evaluation (:func:`quality_baseline`).
        positive_class: the champion's positive class (as recorded with it, matched to its classes by
            value or by text); default: the spec's ``positive_class``, else the window's minority class.
        baseline_rows: the rows the champion was evaluated on (its test rows): the change is then
            judged by independent bootstraps of both sets of rows, so the evaluation's own noise counts,
            and the baseline is measured again on those of its rows whose class the window holds.

    Returns:
        The verdict and the Evidently snapshot of the labelled rows (None without labelled rows).

    Raises:
        DataError: the window lacks a feature the champion needs.
    """
    metric, target = spec.gates.metric, spec.target
    source = FrameColumns(current) if isinstance(current, pd.DataFrame) else current
    needed = model_features(model, spec.features.columns)
    _check_names(source.names, needed, "the monitored window")
    if target not in source.names:
        unknown = QualityResult(0, metric, reason=f"the window has no target column {target!r}: quality not known")
        return unknown, None
    chunk_rows = spec.prediction.chunk_rows
    labelled_rows = sum(int(batch[target].notna().sum()) for batch in source.batches([target], chunk_rows))
    if not labelled_rows:
        return QualityResult(0, metric, reason="the window has no labelled rows yet: quality not known"), None
    configured = positive_class if positive_class is not None else spec.positive_class
    report_columns = [*(c for c in spec.features.columns if c in source.names), target]
    picked = sample_indices(labelled_rows, REPORT_SAMPLE_ROWS, REPORT_SAMPLE_SEED)
    samples: list[pd.DataFrame] = []

    def labelled_batches() -> Iterator[pd.DataFrame]:
        seen = 0
        for batch in source.batches(list(dict.fromkeys([*needed, *report_columns])), chunk_rows):
            rows = batch[batch[target].notna()]
            if picked is None:
                samples.append(rows[report_columns])
            else:
                first, last = np.searchsorted(picked, [seen, seen + len(rows)])
                samples.append(rows[report_columns].iloc[picked[first:last] - seen])
            seen += len(rows)
            yield rows

    predictions = predict_chunks(model, labelled_batches(), spec.features.columns, target, spec.task, configured)
    earlier = None
    if baseline_rows is not None and target in baseline_rows.columns:
        rows = baseline_rows[baseline_rows[target].notna()]
        if spec.task == "classification":  # like with like: a class the window lacks leaves the baseline too
            rows = rows[rows[target].isin(pd.unique(predictions.y_true))]
        earlier = predict(model, rows, spec.features.columns, target, spec.task, predictions.positive)
    verdict = _judge(spec, predictions, compute_all(predictions), baseline, configured is not None, earlier)
    sample = pd.concat(samples, ignore_index=True)
    shown = predictions if picked is None else predictions.take(picked)
    snapshot, report, problems = _quality_snapshot(spec, sample, shown)
    return QualityResult(**verdict, report=report, report_problems=problems), snapshot


def _judge(
    spec: ModelLifecycleSpec,
    predictions: Predictions,
    live: dict[str, float],
    baseline: float | None,
    positive_known: bool,
    earlier: Predictions | None = None,
) -> dict[str, Any]:
    """The fields of a :class:`QualityResult`: the live metrics, the loss, the interval and the verdict.

    A binary metric of one class (precision, recall, f1, pr_auc) is compared with the baseline only
    when the positive class is known: the window's minority class may not be the one it was measured for.
    """
    metric, gates, rows = spec.gates.metric, spec.gates, len(predictions)
    tolerance = spec.monitoring.quality_tolerance
    positive = None if predictions.positive is None else str(predictions.positive)
    verdict: dict[str, Any] = {
        "labelled_rows": rows,
        "metric": metric,
        "live_metrics": live,
        "baseline": baseline,
        "tolerance": tolerance,
        "positive_class": positive,
    }
    value = live.get(metric)
    if value is None:
        why = why_undefined(metric, predictions)
        return {**verdict, "reason": f"{metric} is undefined on the {rows} labelled rows ({why}): quality not known"}
    if predictions.binary and not positive_known and metric in ONE_CLASS_METRICS:
        return {
            **verdict,
            "reason": f"the champion records no positive class ({tracking.TAG_POSITIVE_CLASS}) and the spec names "
            f"none: {metric} of the window's minority class {positive!r} is not compared with its evaluation",
        }
    if earlier is not None and len(earlier) >= gates.min_rows and compute(metric, earlier) is not None:
        baseline = compute(metric, earlier)  # on the evaluation rows of the classes the window holds
        verdict["baseline"] = baseline
    if baseline is None:
        return {**verdict, "reason": f"the champion records no {metric} from its evaluation: nothing to compare with"}
    loss = relative_loss(value, baseline, metric)
    verdict["degradation"] = loss
    measured = f"{metric} {value:.4g} on {rows} labelled rows vs {baseline:.4g} at evaluation ({_change(loss)})"
    if tolerance is None:
        return {**verdict, "reason": f"{measured}; monitoring.quality_tolerance is not set: not judged"}
    if rows < gates.min_rows:
        return {
            **verdict,
            "reason": f"{measured}; fewer labelled rows than gates.min_rows ({gates.min_rows}): quality not judged",
        }
    interval = metric_interval(metric, predictions, gates.confidence, gates.bootstrap_rounds, spec.split.seed)
    verdict.update(interval=interval, confidence=gates.confidence)
    if loss <= tolerance:
        return {**verdict, "reason": f"{measured}: within the tolerance of {tolerance:.0%}"}
    change = None
    if earlier is not None and len(earlier) >= gates.min_rows:
        change = unpaired_comparison(
            metric, predictions, earlier, gates.confidence, gates.bootstrap_rounds, spec.split.seed
        )
    if change is not None:
        verdict["change_interval"] = (change.low, change.high)
        span = (
            f"the {gates.confidence:.0%} interval of the change against its {len(earlier or ())} evaluation rows "
            f"[{change.low:+.4g}, {change.high:+.4g}]"
        )
        if change.high < 0:
            return {
                **verdict,
                "degraded": True,
                "reason": f"{measured}, beyond the tolerance of {tolerance:.0%}, and {span} lies below zero: degraded",
            }
        return {
            **verdict,
            "reason": f"{measured}, beyond the tolerance of {tolerance:.0%}, but {span} reaches "
            "zero: the loss is not significant once the evaluation's own noise is counted",
        }
    if interval is None:
        return {
            **verdict,
            "reason": f"{measured}, beyond the tolerance of {tolerance:.0%}, but {metric} is undefined on too many "
            "resamples of these rows for an interval: not judged degraded",
        }
    low, high = interval
    span = f"its {gates.confidence:.0%} interval [{low:.4g}, {high:.4g}]"
    if wholly_worse(interval, baseline, metric):
        return {
            **verdict,
            "degraded": True,
            "reason": f"{measured}, beyond the tolerance of {tolerance:.0%}, and {span} lies wholly on the worse "
            "side of the baseline: degraded",
        }
    return {
        **verdict,
        "reason": f"{measured}, beyond the tolerance of {tolerance:.0%}, but {span} reaches the baseline: "
        "the loss is not significant on these rows",
    }


def _change(loss: float) -> str:
    return f"{loss:.1%} worse" if loss > 0 else f"{-loss:.1%} better" if loss < 0 else "unchanged"


def _free_name(base: str, taken: set[str]) -> str:
    """``base``, with underscores added until it names no column in ``taken``."""
    name = base
    while name in taken:
        name = f"_{name}_"
    return name


def _quality_snapshot(
    spec: ModelLifecycleSpec, labelled: pd.DataFrame, predictions: Predictions
) -> tuple[Any, str, list[str]]:
    """Evidently's regression or classification preset on labelled rows and the champion's predictions of them.

    ``labelled`` and ``predictions`` are the report's rows: :func:`quality_check` passes at most
    :data:`REPORT_SAMPLE_ROWS` of the labelled rows (a seeded sample); the metrics and the verdict come
    from every labelled row, each predicted once.

    The task comes from the model: a binary classification (``pos_label`` its positive class) when it
    knows exactly two classes, else a multi-class one, whatever the window holds. Labels are given to
    Evidently as text, which is how it matches ``pos_label`` and ``labels``. When Evidently cannot
    build a report for the window (a binary report on rows of one class, say), the next simpler one
    is built: from the predicted labels only, then multi-class, then a summary of the columns.

    Returns:
        The snapshot, which report it is, and the richer reports Evidently could not build (and why).
    """
    from evidently import BinaryClassification, Dataset, MulticlassClassification, Regression, Report
    from evidently.presets import ClassificationPreset, DataSummaryPreset, RegressionPreset

    features = [c for c in spec.features.columns if c in labelled.columns]
    target = spec.target
    prediction = _free_name("prediction", {*features, target})
    probability = _free_name("probability", {*features, target, prediction})
    frame = labelled[[*features, target]].reset_index(drop=True)
    predicted, y_true = predictions.predicted, predictions.y_true
    attempts: list[tuple[str, Any, list[str], Any]] = []  # (what, preset, columns, data definition)
    if spec.task == "regression":
        frame[prediction] = predicted
        definition = _definition(spec, features, regression=[Regression(target=target, prediction=prediction)])
        definition.numerical_columns = [*definition.numerical_columns, target, prediction]
        attempts.append(("regression report", RegressionPreset(), [], definition))
        summary = _definition(spec, features)
        summary.numerical_columns = [*summary.numerical_columns, target, prediction]
    else:
        frame[target] = [str(label) for label in y_true]
        frame[prediction] = [str(label) for label in predicted]
        names = [str(label) for label in predictions.classes]
        labels: dict[Any, str] = {name: name for name in [*names, *sorted({*frame[target]} - set(names))]}

        def classification(kind: Any, probabilities: list[str], **options: Any) -> Any:
            task = kind(target=target, prediction_labels=prediction, labels=labels, **options)
            definition = _definition(spec, features, classification=[task])
            definition.categorical_columns = [*definition.categorical_columns, target, prediction]
            definition.numerical_columns = [*definition.numerical_columns, *probabilities]
            return definition

        if predictions.binary:
            positive = str(predictions.positive)
            if predictions.probabilities and predictions.scores is not None:
                frame[probability] = predictions.scores[:, predictions.classes.index(predictions.positive)]
                definition = classification(
                    BinaryClassification, [probability], pos_label=positive, prediction_probas=probability
                )
                what = f"binary classification report (positive class {positive!r}, with probabilities)"
                attempts.append((what, ClassificationPreset(), [probability], definition))
            definition = classification(BinaryClassification, [], pos_label=positive)
            what = f"binary classification report (positive class {positive!r}, from the predicted labels)"
            attempts.append((what, ClassificationPreset(), [], definition))
        definition = classification(MulticlassClassification, [])
        attempts.append(("multi-class classification report", ClassificationPreset(), [], definition))
        summary = _definition(spec, features)
        summary.categorical_columns = [*summary.categorical_columns, target, prediction]
    attempts.append(("summary of the columns", DataSummaryPreset(), [], summary))
    failures = []
    for what, preset, extra, definition in attempts:
        data = frame[[*features, target, prediction, *extra]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                snapshot = Report([preset]).run(
                    current_data=Dataset.from_pandas(data, data_definition=definition), reference_data=None
                )
                snapshot.get_html_str(as_iframe=False)  # a report that cannot render fails here, not when published
            except Exception as exc:  # Evidently fails in many ways on small or one-class windows
                failures.append(f"{what} ({type(exc).__name__}: {exc})")
                continue
        return snapshot, what, failures
    raise DataError(f"Evidently could not build any quality report for the window: {'; '.join(failures)}")


def publish_report(snapshot: Any, html_uri: str, options: dict[str, Any] | None, client: Any, run_id: str) -> str:
    """Write the report as HTML and JSON at ``html_uri`` (under the artifact root) and log both to the MLflow run.

    The report is rendered once; the same text goes to the artifact root and to the run.
    """
    import tempfile
    from pathlib import Path

    from airflow_mlc.core.validate import save_report

    name = html_uri.rsplit("/", 1)[-1].removesuffix(".html")
    with tempfile.TemporaryDirectory() as folder:
        save_report(snapshot, html_uri, options, copy_to=str(Path(folder) / f"{name}.html"))
        client.log_artifacts(run_id, folder, name)
    return html_uri


def record_drift(client: Any, run_id: str, result: DriftResult, report_uri: str) -> None:
    """Log the drift verdict to the monitoring run: the share, each column's score (``drift_score.<column>``), tags."""
    scores = {tracking.metric_key(f"drift_score.{c.column}"): c.score for c in result.columns}
    values = {"drifted_share": result.drifted_share, "current_rows": result.current_rows, **scores}
    client.log_batch(run_id, metrics=tracking.metric_entities(values))
    client.set_tag(run_id, tracking.TAG_DRIFT_DETECTED, str(result.detected).lower())
    client.set_tag(run_id, tracking.TAG_DRIFTED_SHARE, f"{result.drifted_share:.4f}")
    client.set_tag(run_id, tracking.TAG_DRIFT_REPORT, report_uri)


def record_quality(client: Any, run_id: str, result: QualityResult) -> None:
    """Log the quality verdict to the monitoring run: ``live_*`` metrics, the loss, the interval, the tag."""
    if result.labelled_rows:
        values = {f"live_{k}": v for k, v in result.live_metrics.items()}
        values["labelled_rows"] = result.labelled_rows
        if result.degradation is not None:
            values["quality_loss"] = result.degradation
        if result.interval is not None:
            values[f"live_{result.metric}_ci_low"], values[f"live_{result.metric}_ci_high"] = result.interval
        if result.change_interval is not None:
            values["quality_change_ci_low"], values["quality_change_ci_high"] = result.change_interval
        client.log_batch(run_id, metrics=tracking.metric_entities(values))
    client.set_tag(run_id, tracking.TAG_QUALITY_DEGRADED, str(result.degraded).lower())
