"""Monitoring operators: the Evidently drift report and the champion's live quality on the newest window."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowSkipException

from airflow_mlc.links.mlflow import DriftReportLink, MLflowRunLink, artifact_url, run_url
from airflow_mlc.operators.base import MLCBaseOperator, Upstream, uri_of

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlc.core.monitor import MonitoringRun
    from airflow_mlc.lineage import LineageDataset


class _MonitoringOperator(MLCBaseOperator):
    """What the drift and quality tasks share: the current window and this DAG run's monitoring run.

    Both log to one MLflow run per monitoring DAG run (experiment ``<experiment>/monitoring``), named
    after the window's end (``monitor 2011-05-15``) and tagged with the Airflow run, the window and the
    champion version it checked (``core.monitor``).
    """

    template_fields: Sequence[str] = ("current",)

    def __init__(self, *, current: Upstream, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.current = current

    def monitoring_run(self, context: Context) -> MonitoringRun:
        from airflow_mlc.core import tracking
        from airflow_mlc.core.monitor import MonitoringRun

        window = self.current.get("window") or {} if isinstance(self.current, Mapping) else {}
        key = {tracking.TAG_DAG_ID: self.dag_id, tracking.TAG_RUN_ID: context["run_id"]}
        return MonitoringRun(self.model_spec, self.mlflow_target, key, window)

    def lineage_outputs(self, result: Mapping[str, Any] | None) -> list[LineageDataset]:
        """The report written."""
        from airflow_mlc.lineage import file_dataset

        return [file_dataset(result["report_uri"])] if result and result.get("report_uri") else []


class DriftReportOperator(_MonitoringOperator):
    """Compare the current window with the reference in an Evidently ``DataDriftPreset`` report.

    The reference is ``reference`` when given, else the spec's ``monitoring.drift.reference``, else
    the training data of the version ``champion`` points at (``mlc.train_data_uri`` on the version).
    Columns, per-column methods and thresholds and the drifted-share threshold come from
    ``monitoring.drift``. The verdict is computed on every row, a column at a time, against the
    reference's drift profile (built once per reference under ``<artifact root>/drift-profiles/``); the
    Evidently report, of at most 20,000 sampled rows per side, is written as ``drift.html`` and
    ``drift.json`` under the artifact root and logged to the monitoring run.

    Without a champion and without a fixed reference there is nothing to compare: the task is
    skipped. A champion without recorded training data, or columns missing from either side, fail it.

    :param current: the ingest task's result for the monitored window, or a snapshot URI (templated).
    :param reference: URI of a reference dataset (CSV or Parquet), overriding the spec and the champion.
    :return: ``{"drift_detected", "drifted_share", "drift_share_threshold", "drifted_columns",
        "reference_rows", "current_rows", "report_uri", "report_url" (the MLflow UI page),
        "reference_uri", "window", "champion_version",
        "monitoring_run_id"}``.
    """

    template_fields: Sequence[str] = ("current", "reference")
    operator_extra_links = (DriftReportLink(), MLflowRunLink())

    def __init__(self, *, current: Upstream, reference: str | None = None, **kwargs: Any) -> None:
        super().__init__(current=current, **kwargs)
        self.reference = reference

    def execute_phase(self, context: Context) -> dict[str, Any]:
        from airflow_mlc.core.drift import NothingToMonitorError
        from airflow_mlc.core.monitor import check_drift

        target, report = self.mlflow_target, self.output_uri(context, "drift.html")
        try:
            outcome = check_drift(
                self.monitoring_run(context),
                target.activate(),
                self.storage,
                uri_of(self.current),
                self.reference,
                report,
            )
        except NothingToMonitorError as exc:
            raise AirflowSkipException(str(exc)) from exc
        found = outcome.result
        self.log.info(
            "Drift %s: %.0f%% of the columns drifted %s; report %s",
            "detected" if found["drift_detected"] else "not detected",
            100 * found["drifted_share"],
            found["drifted_columns"],
            found["report_uri"],
        )
        report_url = artifact_url(target.ui_url, outcome.experiment_id, outcome.run_id, "drift/drift.html")
        MLflowRunLink.persist(context, run_url(target.ui_url, outcome.experiment_id, outcome.run_id))
        DriftReportLink.persist(context, report_url)
        return {**found, "report_url": report_url}

    def lineage_inputs(self, result: Mapping[str, Any] | None) -> list[LineageDataset]:
        """The current window's snapshot and the reference it was compared with."""
        from airflow_mlc.lineage import file_dataset

        reference = (result or {}).get("reference_uri") or self.reference
        return [file_dataset(uri) for uri in (uri_of(self.current), reference) if uri]


class ModelQualityOperator(_MonitoringOperator):
    """Score the champion on the labelled rows of the current window and compare with its evaluation.

    The baseline is the gate metric the champion had when it was evaluated (``eval_<metric>`` on its
    training run, else ``test_<metric>``); a binary metric is of the positive class recorded with
    the champion (``mlc.positive_class``). The quality degraded (a retraining signal, ``degraded:
    true``) when the relative loss exceeds ``monitoring.quality_tolerance`` and the metric's
    bootstrap interval on the window (``gates.confidence``) lies wholly on the worse side of the
    baseline, on at least ``gates.min_rows`` labelled rows; ``reason`` says what was decided. An
    Evidently regression or classification report of the labelled rows is written as
    ``quality.html`` (and ``.json``) and logged to the monitoring run. A window without labels, or
    on which the gate metric is undefined (an AUC on rows of one class), is not an error: nothing
    degrades. Without a champion there is nothing to score: ``labelled_rows`` is 0 as well.

    :param current: the ingest task's result for the monitored window, or a snapshot URI (templated).
    :return: ``{"labelled_rows", "metric", "live_metrics", "baseline", "degradation", "tolerance",
        "degraded", "interval", "confidence", "positive_class", "reason", "report", "report_problems",
        "report_uri", "champion_version"}``.
    """

    operator_extra_links = (MLflowRunLink(),)

    def execute_phase(self, context: Context) -> dict[str, Any]:
        from airflow_mlc.core.monitor import check_quality

        target, report = self.mlflow_target, self.output_uri(context, "quality.html")
        outcome, result = check_quality(
            self.monitoring_run(context), target.activate(), self.storage, uri_of(self.current), report
        )
        if not outcome.run_id:
            self.log.info("Model %r has no champion yet: no quality to check", self.model_spec.registered_model_name)
            return outcome.result
        if result.report_problems:
            self.log.warning(
                "Evidently could not build the %s; the quality report is a %s instead",
                "; nor the ".join(result.report_problems),
                result.report,
            )
        self.log.info(
            "Quality on %d labelled rows (degraded: %s): %s; live metrics %s",
            result.labelled_rows,
            result.degraded,
            result.reason,
            result.live_metrics,
        )
        MLflowRunLink.persist(context, run_url(target.ui_url, outcome.experiment_id, outcome.run_id))
        return outcome.result

    def lineage_inputs(self, result: Mapping[str, Any] | None) -> list[LineageDataset]:
        """The current window's snapshot and the champion scored on it."""
        from airflow_mlc.lineage import file_dataset

        return [file_dataset(uri_of(self.current)), *self.lineage_versions((result or {}).get("champion_version"))]
