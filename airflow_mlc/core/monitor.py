"""The monitoring phases as the monitoring DAG runs them: drift and live quality, with their MLflow records.

Both log to one MLflow run per monitoring DAG run (experiment ``<experiment>/monitoring``), named after
the window's end (``monitor 2011-05-15``) and tagged with the Airflow run, the window and the champion
version checked (:meth:`MonitoringRun.open`). The statistics are ``core.drift``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_mlc.core import tracking
from airflow_mlc.core.storage import Storage
from airflow_mlc.spec import ModelLifecycleSpec


@dataclass(frozen=True)
class MonitoringRun:
    """Where a monitoring DAG run logs: ``run_key`` finds its MLflow run again (a retry logs to the same one)."""

    spec: ModelLifecycleSpec
    target: tracking.MlflowTarget
    run_key: dict[str, str]
    window: Mapping[str, Any] = field(default_factory=dict)

    def open(self, client: Any, champion: Any | None) -> tuple[str, str]:
        """The (experiment id, run id) of the monitoring run, created by the first phase to ask."""
        from airflow_mlc.core.registry import readable_time

        spec = self.spec
        experiment_id = tracking.ensure_experiment(
            client, spec.monitoring_experiment_name, self.target.artifact_location
        )
        key = {**self.run_key, tracking.TAG_KIND: tracking.KIND_MONITORING, tracking.TAG_MODEL: spec.name}
        tags = {
            tracking.TAG_WINDOW_START: str(self.window.get("start") or ""),
            tracking.TAG_WINDOW_END: str(self.window.get("end") or ""),
            tracking.TAG_MODEL_VERSION: str(champion.version) if champion is not None else "",
        }
        name = f"monitor {readable_time(self.window.get('end')) or 'all the data'}"
        return experiment_id, tracking.get_or_create_run(client, experiment_id, key, tags, run_name=name)


def champion_of(client: Any, spec: ModelLifecycleSpec) -> Any | None:
    """The version ``champion`` points at, or None."""
    from airflow_mlc.core.registry import CHAMPION, version_by_alias

    return version_by_alias(client, spec.registered_model_name, CHAMPION)


@dataclass(frozen=True)
class PhaseOutcome:
    """A monitoring phase's result (the task's XCom) and the MLflow run it logged to."""

    result: dict[str, Any]
    experiment_id: str = ""
    run_id: str = ""  # none logged: empty


def check_drift(
    run: MonitoringRun, client: Any, storage: Storage, current_uri: str, reference: str | None, report_uri: str
) -> PhaseOutcome:
    """Compare the current window with the reference; the report goes to ``report_uri`` and the monitoring run.

    The reference is ``reference`` when given, else ``monitoring.drift.reference``, else the champion's
    training data (``core.drift.reference_uri``).

    Raises:
        NothingToMonitorError: No champion and no fixed reference: nothing to compare with.
    """
    from airflow_mlc.core.drift import compare_with_profile, publish_report, record_drift, reference_profile
    from airflow_mlc.core.drift import reference_uri as default_reference
    from airflow_mlc.core.storage import ParquetColumns

    spec = run.spec
    champion = champion_of(client, spec)
    location = reference or default_reference(spec, champion)
    profile = reference_profile(location, spec, storage)
    with ParquetColumns(current_uri, storage.options) as current:
        result, snapshot = compare_with_profile(profile, current, spec)
    experiment_id, run_id = run.open(client, champion)
    published = publish_report(snapshot, report_uri, storage.options, client, run_id)
    record_drift(client, run_id, result, published)
    return PhaseOutcome(
        {
            **result.summary(),
            "report_uri": published,
            "reference_uri": location,
            "window": dict(run.window),
            "champion_version": str(champion.version) if champion is not None else None,
            "monitoring_run_id": run_id,
        },
        experiment_id,
        run_id,
    )


def check_quality(
    run: MonitoringRun, client: Any, storage: Storage, current_uri: str, report_uri: str
) -> tuple[PhaseOutcome, Any]:
    """Score the champion on the window's labelled rows against its own evaluation (``core.drift.quality_check``).

    The baseline is the gate metric the champion had at its evaluation (``core.drift.quality_baseline``),
    of the positive class recorded with it. Returns the outcome and the ``QualityResult`` (None result
    fields without a champion: nothing is scored and no run is logged).
    """
    from airflow_mlc.core.drift import QualityResult, publish_report, quality_baseline, quality_check, record_quality
    from airflow_mlc.core.storage import ParquetColumns, read_parquet_if_there

    spec = run.spec
    champion = champion_of(client, spec)
    if champion is None:
        nothing = QualityResult(0, spec.gates.metric, reason="no champion yet: nothing to score")
        return PhaseOutcome({**nothing.as_dict(), "report_uri": None, "champion_version": None}), nothing
    model = tracking.load_model(f"models:/{spec.registered_model_name}/{champion.version}")
    baseline = quality_baseline(client.get_run(champion.run_id).data.metrics, spec.gates.metric)
    positive = (champion.tags or {}).get(tracking.TAG_POSITIVE_CLASS) or None
    evaluated_on = read_parquet_if_there(champion.tags.get(tracking.TAG_TEST_DATA), storage.options)
    with ParquetColumns(current_uri, storage.options) as current:
        result, snapshot = quality_check(spec, model, current, baseline, positive, evaluated_on)
    experiment_id, run_id = run.open(client, champion)
    published = None
    if snapshot is not None:
        published = publish_report(snapshot, report_uri, storage.options, client, run_id)
    record_quality(client, run_id, result)
    outcome = {**result.as_dict(), "report_uri": published, "champion_version": str(champion.version)}
    return PhaseOutcome(outcome, experiment_id, run_id), result
