"""What the airflow-mlc sensors share: the spec, the MLflow connection, poking and deferring."""

from __future__ import annotations

import os
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from airflow_mlc.errors import BadInputError
from airflow_mlc.hooks.mlflow import MLflowHook
from airflow_mlc.serialized_fields import ParamsSerializedOnce
from airflow_mlc.spec import ModelLifecycleSpec, load_spec
from airflow_mlc.triggers.probe import ProbeTrigger
from airflow_mlc.triggers.probes import run_probe

if TYPE_CHECKING:
    from airflow.sdk import Context

#: A spec argument: a loaded spec or the path of its YAML file.
SpecArg = ModelLifecycleSpec | str | os.PathLike[str]


class ProbeSensor(ParamsSerializedOnce, BaseSensorOperator):
    """Base of the sensors: repeat the probe named by ``probe`` until its condition holds.

    In poke or reschedule mode the probe runs in the task; with ``deferrable=True`` the sensor probes
    once and, unless already done, hands the waiting to ``ProbeTrigger`` in the triggerer (``timeout``
    still applies). A probe that finds bad input (a wrong spec, window or connection) fails the task
    without retries.

    :param spec: the model spec, as a loaded ``ModelLifecycleSpec`` or the path of its YAML file.
    :param mlflow_conn_id: overrides the spec's ``mlflow.conn_id``.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :return: the probe's detail dict, once done.
    """

    #: The name of the probe in ``airflow_mlc.triggers.probes.PROBES``.
    probe: str
    ui_color = "#d5f5e3"

    def __init__(
        self,
        *,
        spec: SpecArg | None = None,
        mlflow_conn_id: str | None = None,
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.mlflow_conn_id = mlflow_conn_id
        self.deferrable = deferrable

    @cached_property
    def model_spec(self) -> ModelLifecycleSpec:
        if self.spec is None:
            raise BadInputError(f"{type(self).__name__} {self.task_id!r} needs a spec")
        if isinstance(self.spec, ModelLifecycleSpec):
            return self.spec
        return load_spec(self.spec)

    @property
    def mlflow_connection(self) -> str:
        """The MLflow connection id: the argument, else the spec's, else ``mlflow_default``."""
        if self.mlflow_conn_id:
            return self.mlflow_conn_id
        if self.spec is not None:
            return self.model_spec.mlflow.conn_id
        return MLflowHook.default_conn_name

    def probe_arguments(self, context: Context) -> dict[str, Any]:
        """The probe's keyword arguments for this run (JSON-serializable: a trigger stores them)."""
        raise NotImplementedError

    def _arguments(self, context: Context) -> dict[str, Any]:
        try:
            return self.probe_arguments(context)
        except BadInputError as exc:
            raise AirflowFailException(str(exc)) from exc

    def _run_probe(self, arguments: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        try:
            done, detail = run_probe(self.probe, arguments)
        except BadInputError as exc:
            raise AirflowFailException(str(exc)) from exc
        self.log.info("Probe %s: %s (%s)", self.probe, "done" if done else "not done yet", detail)
        return done, detail

    def poke(self, context: Context) -> PokeReturnValue:
        done, detail = self._run_probe(self._arguments(context))
        return PokeReturnValue(is_done=done, xcom_value=detail if done else None)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        arguments: dict[str, Any] | None = None
        try:  # probe once: no trip through the triggerer when the condition already holds
            arguments = self._arguments(context)
            done, detail = self._run_probe(arguments)
        except AirflowFailException as exc:
            if self.soft_fail or self.never_fail:
                raise AirflowSkipException(f"Skipping: {exc}") from exc
            raise
        except Exception as exc:
            if self.never_fail:
                raise AirflowSkipException(f"Skipping: {exc}") from exc
            if not self.silent_fail or arguments is None:
                raise
            self.log.exception("The first probe failed; deferring anyway (silent_fail)")
            done, detail = False, {}
        if done:
            return detail
        self.defer(
            trigger=ProbeTrigger(self.probe, arguments, self.poke_interval),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: its detail, or the probe's error."""
        if not event or event.get("status") != "success":
            message = (event or {}).get("message", "the trigger ended without an event")
            raise AirflowException(f"Probe {self.probe} failed in the triggerer: {message}")
        self.log.info("Probe %s done (%s)", self.probe, event)
        return {key: value for key, value in event.items() if key != "status"}
