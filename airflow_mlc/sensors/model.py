"""ModelVersionSensor: wait until a registered model has the awaited version in MLflow."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlc.core.registry import CHAMPION
from airflow_mlc.sensors.base import ProbeSensor, SpecArg

if TYPE_CHECKING:
    from airflow.sdk import Context


class ModelVersionSensor(ProbeSensor):
    """Wait until the registered model has an ``alias`` (such as ``champion``), or a version newer than one.

    The version looked at is the one ``alias`` points at; with ``alias=None`` it is the newest version.
    The sensor is done when that version exists and, given ``newer_than``, when its number is above it:
    ``alias=None, newer_than=3`` waits for any version after 3, ``alias="champion", newer_than=3`` for a
    new champion after version 3.

    :param spec: the model spec (its ``registered_model_name`` and ``mlflow.conn_id`` are used), as a
        loaded ``ModelLifecycleSpec`` or the path of its YAML file.
    :param model: the registered model name, instead of a spec's.
    :param alias: the alias to wait for, or None for the newest version (templated).
    :param newer_than: a version number the version must exceed (templated).
    :param mlflow_conn_id: the MLflow connection; default: the spec's, else ``mlflow_default``.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :return: ``{"model", "alias", "version", "newer_than"}``; ``version`` is the version number as a string.
    """

    probe = "model_version"
    template_fields: Sequence[str] = ("alias", "newer_than")

    def __init__(
        self,
        *,
        spec: SpecArg | None = None,
        model: str | None = None,
        alias: str | None = CHAMPION,
        newer_than: str | int | None = None,
        mlflow_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        if spec is None and not model:
            raise ValueError("ModelVersionSensor needs a spec or a registered model name (model)")
        super().__init__(spec=spec, mlflow_conn_id=mlflow_conn_id, **kwargs)
        self.model = model
        self.alias = alias
        self.newer_than = newer_than

    @property
    def model_name(self) -> str:
        """The registered model: ``model``, else the spec's registered model name."""
        return self.model or self.model_spec.registered_model_name

    def probe_arguments(self, context: Context) -> dict[str, Any]:
        return {
            "mlflow_conn_id": self.mlflow_connection,
            "model": self.model_name,
            "alias": self.alias or None,
            "newer_than": self.newer_than,
        }
