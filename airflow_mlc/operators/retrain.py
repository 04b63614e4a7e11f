"""RetrainTriggerOperator: turn the monitoring signals into an event of the model's retraining asset."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset
from airflow.sdk.exceptions import AirflowSkipException

from airflow_mlc.links.mlflow import DriftReportLink
from airflow_mlc.operators.base import MLCBaseOperator, UpstreamResult, result_of
from airflow_mlc.run_context import flag

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlc.lineage import LineageDataset


#: The XCom key of the retraining decision, pushed whether or not a retraining is requested.
DECISION_KEY = "decision"


class RetrainTriggerOperator(MLCBaseOperator):
    """Emit an event of the retraining asset (``mlc://<name>/retrain``) when drift or quality loss holds.

    The event's extra carries the model, the reason, the window, the drift report's URI, the drifted
    share and columns, the quality figures and the monitoring run; a DAG scheduled on the asset (the
    training DAG) starts from it. No event (the task is skipped, the reason in its log) when there is
    no signal, when a retraining was already requested for the same window, or when the last request
    is closer than ``monitoring.cooldown_days`` in data time. ``force`` lifts the last two rules.
    Every decision is recorded on the monitoring run (``mlc.retrain_requested``, ``mlc.retrain_reason``).

    :param drift: the drift task's result.
    :param quality: the quality task's result, if any.
    :param force: request even inside the cooldown or for an already requested window (templated).
    :param asset_uri: the asset to emit; default the spec's ``mlc://<name>/retrain``. It is the task's outlet.
    :return: the event's extra. The decision, requested or not, is also pushed as the XCom
        ``decision``: ``{"requested", "reason"}`` (the Models page shows it).
    """

    template_fields: Sequence[str] = ("drift", "quality", "force")
    operator_extra_links = (DriftReportLink(),)
    ui_color = "#fdebd0"

    def __init__(
        self,
        *,
        drift: UpstreamResult,
        quality: UpstreamResult | None = None,
        force: bool | str = False,
        asset_uri: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.drift = drift
        self.quality = quality
        self.force = force
        self.asset = Asset(asset_uri or self.model_spec.retrain_asset_uri)
        self.outlets = [*self.outlets, self.asset]

    def execute_phase(self, context: Context) -> dict[str, Any]:
        from airflow_mlc.core.retrain import decide_and_record, signals

        spec = self.model_spec
        drift = result_of(self.drift, "drift")
        quality = result_of(self.quality, "quality") if self.quality is not None else None
        decision = decide_and_record(
            self.mlflow_target.activate(),
            spec.name,
            spec.monitoring_experiment_name,
            monitoring_run_id=drift["monitoring_run_id"],
            airflow_run_id=context["run_id"],
            found=signals(drift, quality),
            window=drift.get("window") or {},
            cooldown_days=spec.monitoring.cooldown_days,
            force=flag(self.force),
        )
        DriftReportLink.persist(context, drift.get("report_url"))
        context["ti"].xcom_push(key=DECISION_KEY, value={"requested": decision.request, "reason": decision.reason})
        if not decision.request:
            raise AirflowSkipException(f"no retraining requested: {decision.reason}")
        extra = retrain_event_extra(spec.name, decision.reason, drift, quality)
        context["outlet_events"][self.asset].extra = extra
        self.log.info("Retraining requested through %s: %s", self.asset.uri, decision.reason)
        return extra

    def lineage_inputs(self, result: Mapping[str, Any] | None) -> list[LineageDataset]:
        """The drift report behind the decision."""
        from airflow_mlc.lineage import file_dataset

        report = self.drift.get("report_uri") if isinstance(self.drift, Mapping) else None
        return [file_dataset(report)] if report else []

    def lineage_outputs(self, result: Mapping[str, Any] | None) -> list[LineageDataset]:
        """The retraining asset, when an event of it was emitted."""
        from airflow_mlc.lineage import uri_dataset

        return [uri_dataset(self.asset.uri)] if result else []


def retrain_event_extra(
    model: str, reason: str, drift: Mapping[str, Any], quality: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The small, JSON-only payload of a retraining event."""
    return {
        "model": model,
        "reason": reason,
        "window": dict(drift.get("window") or {}),
        "report_uri": drift.get("report_uri"),
        "drift_detected": drift.get("drift_detected"),
        "drifted_share": drift.get("drifted_share"),
        "drifted_columns": dict(drift.get("drifted_columns") or {}),
        "quality_degraded": bool(quality and quality.get("degraded")),
        "quality_loss": quality.get("degradation") if quality else None,
        "champion_version": drift.get("champion_version"),
        "monitoring_run_id": drift.get("monitoring_run_id"),
    }
