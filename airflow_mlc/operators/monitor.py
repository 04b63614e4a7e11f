"""Monitoring operators: the Evidently drift report and the champion's live quality on the newest window."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowSkipException

from airflow_mlc.links.mlflow import DriftReportLink, MLflowRunLink, artifact_url, run_url
from airflow_mlc.operators.base import MLCBaseOperator, Upstream, uri_of

if TYPE_CHECKING:
    from airflow.sdk import Context


class _MonitoringOperator(MLCBaseOperator):
    """What the drift and quality tasks share: the current window, the champion, the monitoring run.

    Both log to one MLflow run per monitoring DAG run (experiment ``<experiment>/monitoring``), named
    after the window's end (``monitor 2011-05-15``) and tagged with the Airflow run, the window and the
    champion version it checked.
    """

    template_fields: Sequence[str] = ("current",)

    def __init__(self, *, current: Upstream, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.current = current

    @property
    def window(self) -> Mapping[str, Any]:
        return self.current.get("window") or {} if isinstance(self.current, Mapping) else {}

    def monitoring_run(self, client: Any, context: Context, champion: Any | None) -> tuple[str, str]:
        """The (experiment id, run id) of this DAG run's monitoring run, created by the first task to ask.

        The run is named after the end of the window it checks: ``monitor 2011-05-15``.
        """
        from airflow_mlc.core import tracking
        from airflow_mlc.core.registry import readable_time

        spec = self.model_spec
        target = self.mlflow_target
        experiment_id = tracking.ensure_experiment(client, spec.monitoring_experiment_name, target.artifact_location)
        key = {
            tracking.TAG_KIND: tracking.KIND_MONITORING,
            tracking.TAG_MODEL: spec.name,
            tracking.TAG_DAG_ID: self.dag_id,
            tracking.TAG_RUN_ID: context["run_id"],
        }
        tags = {
            tracking.TAG_WINDOW_START: str(self.window.get("start") or ""),
            tracking.TAG_WINDOW_END: str(self.window.get("end") or ""),
            tracking.TAG_MODEL_VERSION: str(champion.version) if champion is not None else "",
        }
        name = f"monitor {readable_time(self.window.get('end')) or 'all the data'}"
        return experiment_id, tracking.get_or_create_run(client, experiment_id, key, tags, run_name=name)

    def champion(self, client: Any) -> Any | None:
        from airflow_mlc.core.registry import CHAMPION, version_by_alias

        return version_by_alias(client, self.model_spec.registered_model_name, CHAMPION)


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
        from airflow_mlc.core.drift import (
            NothingToMonitorError,
            compare_with_profile,
            publish_report,
            record_drift,
            reference_profile,
            reference_uri,
        )
        from airflow_mlc.core.storage import ParquetColumns

        spec = self.model_spec
        target = self.mlflow_target
        client = target.activate()
        champion = self.champion(client)
        try:
            reference_location = self.reference or reference_uri(spec, champion)
        except NothingToMonitorError as exc:
            raise AirflowSkipException(str(exc)) from exc
        reference = reference_profile(reference_location, spec, self.storage)
        with ParquetColumns(uri_of(self.current), self.storage.options) as current:
            result, snapshot = compare_with_profile(reference, current, spec)

        experiment_id, run_id = self.monitoring_run(client, context, champion)
        report_uri = publish_report(
            snapshot, self.output_uri(context, "drift.html"), self.storage.options, client, run_id
        )
        summary = result.summary()
        record_drift(client, run_id, result, report_uri)
        self.log.info(
            "Drift %s: %.0f%% of the columns drifted %s; report %s",
            "detected" if result.detected else "not detected",
            100 * result.drifted_share,
            summary["drifted_columns"],
            report_uri,
        )
        report_url = artifact_url(target.ui_url, experiment_id, run_id, "drift/drift.html")
        MLflowRunLink.persist(context, run_url(target.ui_url, experiment_id, run_id))
        DriftReportLink.persist(context, report_url)
        return {
            **summary,
            "report_uri": report_uri,
            "report_url": report_url,
            "reference_uri": reference_location,
            "window": dict(self.window),
            "champion_version": str(champion.version) if champion is not None else None,
            "monitoring_run_id": run_id,
        }


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
        from airflow_mlc.core import tracking
        from airflow_mlc.core.drift import (
            QualityResult,
            publish_report,
            quality_baseline,
            quality_check,
            record_quality,
        )
        from airflow_mlc.core.storage import ParquetColumns, read_parquet_if_there

        spec = self.model_spec
        target = self.mlflow_target
        client = target.activate()
        champion = self.champion(client)
        if champion is None:
            self.log.info("Model %r has no champion yet: no quality to check", spec.registered_model_name)
            nothing = QualityResult(0, spec.gates.metric, reason="no champion yet: nothing to score")
            return {**nothing.as_dict(), "report_uri": None, "champion_version": None}
        model = tracking.load_model(f"models:/{spec.registered_model_name}/{champion.version}")
        baseline = quality_baseline(client.get_run(champion.run_id).data.metrics, spec.gates.metric)
        positive = (champion.tags or {}).get(tracking.TAG_POSITIVE_CLASS) or None
        evaluated_on = read_parquet_if_there(champion.tags.get(tracking.TAG_TEST_DATA), self.storage.options)
        with ParquetColumns(uri_of(self.current), self.storage.options) as current:
            result, snapshot = quality_check(spec, model, current, baseline, positive, evaluated_on)

        experiment_id, run_id = self.monitoring_run(client, context, champion)
        report_uri = None
        if snapshot is not None:
            report_uri = publish_report(
                snapshot, self.output_uri(context, "quality.html"), self.storage.options, client, run_id
            )
        record_quality(client, run_id, result)
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
        MLflowRunLink.persist(context, run_url(target.ui_url, experiment_id, run_id))
        return {**result.as_dict(), "report_uri": report_uri, "champion_version": str(champion.version)}
