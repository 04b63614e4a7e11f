"""Template DAGs: every spec becomes ``mlc_<name>_train``, ``_monitor``, ``_predict`` and ``_rollback``.

Training: ingest >> validate >> prepare >> train >> evaluate >> register, on the spec's schedule
or on an event of the retraining asset ``mlc://<name>/retrain``, whichever comes first.
Monitoring: wait_for_data >> ingest >> drift, quality >> request_retraining, whose outlet is that asset;
with a rollout (``prediction.rollout.mode``), quality >> judge_rollout too.
Prediction: wait_for_data, wait_for_champion >> predict (chunked batch inference).
Rollback: one manual task that points ``champion`` back at an earlier version.

An invalid spec file hides no other model: the valid specs get their DAGs, and each invalid file
becomes a placeholder DAG ``mlc_invalid_spec_<file stem>`` (tags ``mlc`` and ``invalid-spec``) whose
description and docs show the file, the field and the problem, and whose one task fails at once
with that message. Airflow records import errors per DAG file and lets DAG files emit no DAG
warnings of their own, so such a DAG is what keeps the error in the UI beside the working models.

The DAGs are built with ``auto_register=False``: Airflow sees exactly the DAGs ``build_dags``
returns (a DAG file puts them in its globals), never half of the DAGs of a spec that failed.

Every task is built by ``phase_task``, which gives its operator the spec's ``tasks`` settings of its task id
(queue, pool, pool slots, priority weight, retries, executor_config; see ``task_settings``).

A task process parses the DAG file for one DAG, named by Airflow's parsing context
(``airflow.sdk.get_parsing_context().dag_id``); ``build_dags`` then builds only that spec's DAGs.

Only the spec module and the operator classes are imported here, so parsing stays cheap.
"""

from __future__ import annotations

import copy
import logging
import os
import re
from collections.abc import Callable, Container, Mapping
from pathlib import Path
from typing import Any, TypeVar

from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, BaseOperator, CronTriggerTimetable, Param, get_parsing_context
from airflow.sdk.exceptions import AirflowTimetableInvalid

from airflow_mlc.errors import SpecError
from airflow_mlc.operators.evaluate import EvaluateModelOperator
from airflow_mlc.operators.ingest import IngestOperator
from airflow_mlc.operators.invalid_spec import InvalidSpecOperator
from airflow_mlc.operators.monitor import DriftReportOperator, ModelQualityOperator
from airflow_mlc.operators.predict import BatchPredictOperator
from airflow_mlc.operators.prepare import PrepareDataOperator
from airflow_mlc.operators.register import RegisterModelOperator
from airflow_mlc.operators.retrain import RetrainTriggerOperator
from airflow_mlc.operators.rollback import RollbackOperator
from airflow_mlc.operators.rollout import RolloutJudgeOperator
from airflow_mlc.operators.train import TrainModelOperator
from airflow_mlc.operators.validate import ValidateDataOperator
from airflow_mlc.sensors.data import DataAvailableSensor
from airflow_mlc.sensors.model import ModelVersionSensor
from airflow_mlc.spec import DEFAULT_PHASE, ModelLifecycleSpec, load_specs_reporting

log = logging.getLogger(__name__)

#: Folder of the spec files when ``MLC_SPECS_DIR`` is not set: ``specs/`` beside the DAG file.
SPECS_DIR_VARIABLE = "MLC_SPECS_DIR"
#: The placeholder DAG of an invalid spec file is ``mlc_invalid_spec_<file stem>``.
INVALID_SPEC_DAG_PREFIX = "mlc_invalid_spec_"
INVALID_SPEC_TAGS = ("mlc", "invalid-spec")
#: Longest description of a placeholder DAG; its docs hold the whole message.
DESCRIPTION_CHARS = 1000

OperatorT = TypeVar("OperatorT", bound=BaseOperator)


def task_settings(spec: ModelLifecycleSpec, task_id: str) -> dict[str, Any]:
    """The spec's ``tasks`` settings of one task, as keyword arguments of its operator.

    ``default``'s fields, each replaced by the task's own (``ModelLifecycleSpec.task_settings``). The
    ``executor_config`` is a copy of the spec's, given as it is, except a ``pod_override`` written as a pod
    manifest (a mapping, the only form YAML has): it becomes the ``kubernetes.client.models.V1Pod`` the
    KubernetesExecutor requires.

    Args:
        spec: The model's spec.
        task_id: The task's id, which is its phase.

    Returns:
        Only the settings the spec gives; Airflow's defaults stand for the others.

    Raises:
        SpecError: A ``pod_override`` manifest, but no Kubernetes provider to read it with.
    """
    settings = spec.task_settings(task_id)
    if "executor_config" in settings:
        config = copy.deepcopy(settings["executor_config"])
        if isinstance(config.get("pod_override"), Mapping):
            own = spec.tasks.get(task_id)
            phase = task_id if own is not None and own.executor_config is not None else DEFAULT_PHASE
            config["pod_override"] = pod_from_manifest(config["pod_override"], f"{spec.origin}: tasks.{phase}")
        settings["executor_config"] = config
    return settings


def pod_from_manifest(manifest: Mapping[str, Any], where: str) -> Any:
    """A pod manifest (``metadata``, ``spec``, in the Kubernetes API's field names) as a ``V1Pod``.

    Raises:
        SpecError: The Kubernetes provider (``apache-airflow-providers-cncf-kubernetes``) is not installed.
    """
    try:
        from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator
    except ImportError:
        raise SpecError(
            f"{where}.executor_config.pod_override: a pod manifest needs the KubernetesExecutor's provider "
            "(apache-airflow-providers-cncf-kubernetes) where the DAGs are parsed"
        ) from None
    return PodGenerator.deserialize_model_dict(dict(manifest))


def phase_task(spec: ModelLifecycleSpec, operator: type[OperatorT], task_id: str, /, **arguments: Any) -> OperatorT:
    """``operator(task_id=task_id, **arguments)`` with the spec's ``tasks`` settings of ``task_id``.

    Every task of a spec's DAGs is built here, so every one gets its phase's queue, pool and the rest.
    """
    return operator(task_id=task_id, **arguments, **task_settings(spec, task_id))


def window_params() -> dict[str, Param]:
    """The window fields of a trigger form."""
    return {
        "window_start": Param(
            None, type=["null", "string"], title="Window start", description="ISO date; empty: lookback before the end."
        ),
        "window_end": Param(
            None, type=["null", "string"], title="Window end", description="ISO date, exclusive; empty: the run's end."
        ),
    }


def training_params(spec: ModelLifecycleSpec) -> dict[str, Param]:
    """The trigger form of a training DAG."""
    return {
        **window_params(),
        "gate_max": Param(spec.gates.max, type=["null", "number"], title=f"Maximum {spec.gates.metric}"),
        "gate_min": Param(spec.gates.min, type=["null", "number"], title=f"Minimum {spec.gates.metric}"),
        "min_improvement": Param(
            spec.gates.min_improvement, type="number", minimum=0, title="Required relative gain over the champion"
        ),
        "dry_run": Param(False, type="boolean", title="Dry run", description="Train and evaluate; change no alias."),
        "force_promote": Param(False, type="boolean", title="Force promote", description="Promote despite the gates."),
    }


def cron(expression: str | None) -> CronTriggerTimetable | None:
    """A spec schedule (cron expression or preset) in UTC."""
    return CronTriggerTimetable(expression, timezone="UTC") if expression else None


def training_schedule(spec: ModelLifecycleSpec) -> AssetOrTimeSchedule | list[Asset]:
    """The spec's cron schedule (UTC) or the retraining asset; only the asset when there is no schedule."""
    asset = Asset(spec.retrain_asset_uri)
    timetable = cron(spec.schedule.train)
    return AssetOrTimeSchedule(timetable=timetable, assets=[asset]) if timetable else [asset]


def training_dag(spec: ModelLifecycleSpec) -> DAG:
    """The training DAG of one spec."""
    with DAG(
        dag_id=spec.dag_ids["train"],
        description=spec.description or f"Train {spec.name} and promote it through the gates",
        schedule=training_schedule(spec),
        params=training_params(spec),
        render_template_as_native_obj=True,
        max_active_runs=1,
        tags=["mlc", spec.name, *spec.tags],
        auto_register=False,
        doc_md=f"Training life cycle of **{spec.name}** ({spec.task}, target `{spec.target}`).",
    ) as dag:
        common: dict[str, Any] = {"spec": spec}  # phase_task's spec is the one it reads the settings from
        ingest = phase_task(
            spec,
            IngestOperator,
            "ingest",
            window_start="{{ params.window_start }}",
            window_end="{{ params.window_end }}",
            **common,
        )
        validate = phase_task(spec, ValidateDataOperator, "validate", snapshot=ingest.output, **common)
        prepare = phase_task(spec, PrepareDataOperator, "prepare", snapshot=ingest.output, **common)
        train = phase_task(spec, TrainModelOperator, "train", split=prepare.output, **common)
        evaluate = phase_task(
            spec,
            EvaluateModelOperator,
            "evaluate",
            split=prepare.output,
            training=train.output,
            gate_max="{{ params.gate_max }}",
            gate_min="{{ params.gate_min }}",
            min_improvement="{{ params.min_improvement }}",
            **common,
        )
        register = phase_task(
            spec,
            RegisterModelOperator,
            "register",
            training=train.output,
            evaluation=evaluate.output,
            force_promote="{{ params.force_promote }}",
            registry_dry_run="{{ params.dry_run }}",
            **common,
        )
        validate >> prepare
        evaluate >> register
    return dag


def monitoring_dag(spec: ModelLifecycleSpec) -> DAG:
    """The monitoring DAG of one spec: drift and quality on the newest window, and the retraining request."""
    monitoring = spec.monitoring
    with DAG(
        dag_id=spec.dag_ids["monitor"],
        description=f"Watch {spec.name} for drift and quality loss; request its retraining",
        schedule=cron(spec.schedule.monitor),
        params={
            **window_params(),
            "force_retrain": Param(
                False,
                type="boolean",
                title="Force retraining",
                description="Request a retraining on a signal even inside the cooldown or for an already used window.",
            ),
        },
        render_template_as_native_obj=True,
        max_active_runs=1,
        tags=["mlc", spec.name, *spec.tags],
        auto_register=False,
        doc_md=(
            f"Monitoring of **{spec.name}**: the last {monitoring.window_days} days against the champion's "
            f"training data. A signal emits `{spec.retrain_asset_uri}`, "
            f"which starts `{spec.dag_ids['train']}`."
        ),
    ) as dag:
        window: dict[str, Any] = {
            "spec": spec,
            "window_start": "{{ params.window_start }}",
            "window_end": "{{ params.window_end }}",
            "lookback_days": monitoring.window_days,
            "prefer_data_interval": True,
        }
        wait = phase_task(spec, DataAvailableSensor, "wait_for_data", **waiting(spec), **window)
        ingest = phase_task(spec, IngestOperator, "ingest", **window)
        drift = phase_task(spec, DriftReportOperator, "drift", spec=spec, current=ingest.output)
        quality = phase_task(spec, ModelQualityOperator, "quality", spec=spec, current=ingest.output)
        request = phase_task(
            spec,
            RetrainTriggerOperator,
            "request_retraining",
            spec=spec,
            drift=drift.output,
            quality=quality.output,
            force="{{ params.force_retrain }}",
        )
        wait >> ingest
        drift >> quality >> request
        if spec.prediction.rollout.mode != "off":  # the challenger judged on the same window's labelled rows
            quality >> phase_task(spec, RolloutJudgeOperator, "judge_rollout", spec=spec, current=ingest.output)
    return dag


def waiting(spec: ModelLifecycleSpec) -> dict[str, Any]:
    """How the sensors of the spec's DAGs wait (``monitoring.wait``)."""
    wait = spec.monitoring.wait
    return {
        "deferrable": wait.deferrable,
        "poke_interval": wait.poke_interval_seconds,
        "timeout": wait.timeout_hours * 3600,
        "mode": "poke" if wait.deferrable else "reschedule",
    }


def prediction_dag(spec: ModelLifecycleSpec) -> DAG:
    """The batch-inference DAG of one spec: wait for the window's data and a champion, then score in chunks."""
    prediction = spec.prediction
    with DAG(
        dag_id=spec.dag_ids["predict"],
        description=f"Score the newest window with {spec.name}'s champion",
        schedule=cron(spec.schedule.predict),
        params={
            **window_params(),
            "model_version": Param(
                prediction.model_version,
                type=["null", "string", "integer"],
                title="Model version",
                description="Empty: the version 'champion' points at when the run starts scoring.",
            ),
        },
        render_template_as_native_obj=True,
        max_active_runs=1,  # two runs of one interval at once would both replace its table rows
        tags=["mlc", spec.name, *spec.tags],
        auto_register=False,
        doc_md=(
            f"Batch inference of **{spec.name}**: the last {prediction.window_days} day(s), in chunks of "
            f"{prediction.chunk_rows} rows, to one Parquet partition per interval"
            + (f" and the table `{prediction.table}`." if prediction.table else ".")
        ),
    ) as dag:
        window: dict[str, Any] = {
            "spec": spec,
            "window_start": "{{ params.window_start }}",
            "window_end": "{{ params.window_end }}",
        }
        wait_for_data = phase_task(
            spec,
            DataAvailableSensor,
            "wait_for_data",
            lookback_days=prediction.window_days,
            prefer_data_interval=True,
            min_rows=1,
            **waiting(spec),
            **window,
        )
        wait_for_champion = phase_task(
            spec,
            ModelVersionSensor,
            "wait_for_champion",
            spec=spec,
            alias="{{ '' if params.model_version else 'champion' }}",
            **waiting(spec),
        )
        predict = phase_task(
            spec, BatchPredictOperator, "predict", model_version="{{ params.model_version }}", **window
        )
        [wait_for_data, wait_for_champion] >> predict
    return dag


def rollback_dag(spec: ModelLifecycleSpec) -> DAG:
    """The manual rollback DAG of one spec: ``champion`` back to the previous or a named version."""
    with DAG(
        dag_id=spec.dag_ids["rollback"],
        description=f"Point the champion of {spec.name} back at an earlier version, with a reason",
        schedule=None,
        params={
            "target_version": Param(
                None,
                type=["null", "string", "integer"],
                title="Target version",
                description="Empty: the version the current champion replaced.",
            ),
            "reason": Param("", type="string", minLength=1, title="Reason", description="Recorded with the move."),
        },
        render_template_as_native_obj=True,
        max_active_runs=1,
        tags=["mlc", spec.name, *spec.tags],
        auto_register=False,
        doc_md=f"Roll back `models:/{spec.registered_model_name}@champion`; the move is recorded with who, why, when.",
    ) as dag:
        phase_task(
            spec,
            RollbackOperator,
            "rollback",
            spec=spec,
            target_version="{{ params.target_version }}",
            reason="{{ params.reason }}",
        )
    return dag


def specs_dir(default: str | os.PathLike[str]) -> Path:
    """The spec folder: ``$MLC_SPECS_DIR`` if set, else ``default``."""
    return Path(os.environ.get(SPECS_DIR_VARIABLE) or default)


#: The DAGs every valid spec gets, one per kind of ``airflow_mlc.spec.DAG_KINDS``, in that order.
SPEC_DAG_BUILDERS: tuple[Callable[[ModelLifecycleSpec], DAG], ...] = (
    training_dag,
    monitoring_dag,
    prediction_dag,
    rollback_dag,
)


def check_schedules(spec: ModelLifecycleSpec) -> None:
    """Check the spec's cron expressions, which only Airflow can parse.

    Raises:
        SpecError: A schedule is not a cron expression or preset.
    """
    for kind in ("train", "monitor", "predict"):
        expression = getattr(spec.schedule, kind)
        timetable = cron(expression)
        if timetable is None:
            continue
        try:
            timetable.validate()
        except AirflowTimetableInvalid as exc:
            raise SpecError(
                f"{spec.origin}: schedule.{kind}: {expression!r} is not a cron expression or preset ({exc})"
            ) from None


def spec_dags(spec: ModelLifecycleSpec) -> list[DAG]:
    """The four DAGs of one spec, checked as the DAG processor checks them.

    Raises:
        SpecError: The spec passed validation but its DAGs cannot be built (e.g. a bad cron expression, or a
            ``pod_override`` manifest without the Kubernetes provider).
    """
    check_schedules(spec)
    try:
        dags = [build(spec) for build in SPEC_DAG_BUILDERS]
        for dag in dags:
            dag.validate()
    except SpecError:  # already names the file and the field (a ``tasks`` setting)
        raise
    except Exception as exc:  # whatever it is, it must cost this spec only
        raise SpecError(f"{spec.origin}: (top level): its DAGs cannot be built: {type(exc).__name__}: {exc}") from exc
    return dags


def invalid_spec_dag_id(file: str | os.PathLike[str], taken: Container[str] = ()) -> str:
    """``mlc_invalid_spec_<file stem>``, the stem made a valid dag_id, numbered if ``taken`` holds it."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(file).stem).strip("_.-") or "spec"
    base = (INVALID_SPEC_DAG_PREFIX + stem)[:240]
    dag_id, number = base, 1
    while dag_id in taken:
        number += 1
        dag_id = f"{base}_{number}"
    return dag_id


def _code_block(text: str) -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}text\n{text}\n{fence}"


def invalid_spec_dag(file: str | os.PathLike[str], error: SpecError, dag_id: str | None = None) -> DAG:
    """The placeholder DAG of an invalid spec file: it shows the error, and its one task fails with it.

    Args:
        file: The invalid spec file.
        error: Its error, ``<file>: <field>: <problem>``.
        dag_id: The DAG's id; default: ``mlc_invalid_spec_<file stem>``.

    Returns:
        A manual-only DAG tagged ``mlc`` and ``invalid-spec``.
    """
    path = Path(file)
    message = str(error)
    summary = " ".join(f"Invalid model spec: {message}".split())
    if len(summary) > DESCRIPTION_CHARS:
        summary = summary[: DESCRIPTION_CHARS - 2] + " …"
    with DAG(
        dag_id=dag_id or invalid_spec_dag_id(path),
        description=summary,
        schedule=None,
        tags=list(INVALID_SPEC_TAGS),
        auto_register=False,
        doc_md=(
            f"### Invalid model spec `{path.name}`\n\n"
            f"The spec file `{path}` is invalid, so no DAG is built from it; the other spec files are not "
            "affected. Once the file is fixed, the next parse replaces this DAG with its model's DAGs.\n\n"
            "The problem, as `<file>: <field>: <problem>`:\n\n"
            f"{_code_block(message)}\n\n"
            "Triggering this DAG only fails its task with the same message."
        ),
    ) as dag:
        InvalidSpecOperator(task_id="invalid_spec", message=message)
    return dag


def build_dags(folder: str | os.PathLike[str]) -> dict[str, DAG]:
    """Every DAG of every valid spec in ``folder``, and a placeholder DAG per invalid spec file, by dag_id.

    An invalid file hides no other spec's DAGs: it is logged as a warning and becomes the DAG
    ``mlc_invalid_spec_<file stem>`` (see ``invalid_spec_dag``).

    When Airflow parses the DAG file for one DAG (a task process: ``get_parsing_context().dag_id`` names
    it), only the DAGs of the spec it belongs to are built, and none if it belongs to no spec. An
    ``mlc_invalid_spec_`` id that is no spec's DAG may be a placeholder: then every DAG is built as
    usual, since a placeholder's number depends on the other DAGs.

    Args:
        folder: The folder of the spec files.

    Returns:
        The DAGs by dag_id, for a DAG file's globals.
    """
    loaded = load_specs_reporting(folder)
    asked = get_parsing_context().dag_id
    if asked is not None:
        owner = [spec for spec in loaded.specs if asked in spec.dag_ids.values()]
        if owner or not asked.startswith(INVALID_SPEC_DAG_PREFIX):
            return _dags_of(owner, errors={})
    return _dags_of(loaded.specs, loaded.errors)


def _dags_of(specs: list[ModelLifecycleSpec], errors: dict[Path, SpecError]) -> dict[str, DAG]:
    """The DAGs of ``specs``, and a placeholder DAG per file in ``errors`` and per spec whose DAGs fail to build."""
    errors = dict(errors)
    dags: dict[str, DAG] = {}
    for spec in specs:
        try:
            built = spec_dags(spec)
        except SpecError as exc:
            errors[Path(spec.origin)] = exc
            continue
        dags.update((dag.dag_id, dag) for dag in built)
    for file, error in sorted(errors.items()):
        dag = invalid_spec_dag(file, error, invalid_spec_dag_id(file, taken=dags))
        log.warning("Invalid model spec, shown as the DAG %s instead of its model's DAGs: %s", dag.dag_id, error)
        dags[dag.dag_id] = dag
    return dags
