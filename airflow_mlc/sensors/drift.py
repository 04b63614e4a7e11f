"""DriftSensor: wait until the newest monitoring run of a model found drift."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlc.run_context import rendered
from airflow_mlc.sensors.base import ProbeSensor, SpecArg

if TYPE_CHECKING:
    from airflow.sdk import Context


class DriftSensor(ProbeSensor):
    """Wait until the newest monitoring run of the spec's model shows data drift.

    The monitoring runs live in the spec's monitoring experiment (``<experiment>/monitoring``), tagged
    with the model's name; the newest is the one whose data window ends last. An older run's drift does
    not count once a newer run found none.

    :param spec: the model spec, as a loaded ``ModelLifecycleSpec`` or the path of its YAML file.
    :param since: only a run whose data window ends at or after this ISO 8601 time counts (templated).
    :param mlflow_conn_id: overrides the spec's ``mlflow.conn_id``.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :return: ``{"run_id", "window_end", "drift_detected", "drifted_share", "report_uri"}`` of that run.
    """

    probe = "drift"
    template_fields: Sequence[str] = ("since",)

    def __init__(
        self, *, spec: SpecArg, since: str | None = None, mlflow_conn_id: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(spec=spec, mlflow_conn_id=mlflow_conn_id, **kwargs)
        self.since = since

    def probe_arguments(self, context: Context) -> dict[str, Any]:
        spec = self.model_spec
        return {
            "mlflow_conn_id": self.mlflow_connection,
            "experiment_name": spec.monitoring_experiment_name,
            "model": spec.name,
            "since": rendered(self.since),
        }
