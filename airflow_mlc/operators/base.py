"""What every airflow-mlc operator shares: the spec, the artifact root, MLflow, the run's keys."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any, Union

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlc.errors import BadInputError
from airflow_mlc.hooks.mlflow import MLflowHook, airflow_home
from airflow_mlc.serialized_fields import ParamsSerializedOnce
from airflow_mlc.spec import ModelLifecycleSpec, load_spec

if TYPE_CHECKING:
    from airflow.sdk import Context, XComArg

    from airflow_mlc.core.registry import MoveLog
    from airflow_mlc.core.storage import Storage
    from airflow_mlc.core.tracking import MlflowTarget
    from airflow_mlc.lineage import LineageDataset


#: An upstream result: a URI, a result dict, or (when the DAG is built) the upstream task's ``.output``.
Upstream = Union[str, Mapping[str, Any], "XComArg"]


#: An upstream task's result dict, or its ``.output`` while the DAG is built.
UpstreamResult = Union[Mapping[str, Any], "XComArg"]


def result_of(value: UpstreamResult, name: str) -> Mapping[str, Any]:
    """The rendered result of an upstream task, checked to be one."""
    if not isinstance(value, Mapping):
        raise BadInputError(f"{name} must be an upstream task's result (a mapping), not {value!r}")
    return value


#: The variable each native thread pool reads when its library loads, by threadpoolctl's internal API name.
THREAD_VARIABLES = {"openmp": "OMP_NUM_THREADS", "openblas": "OPENBLAS_NUM_THREADS", "mkl": "MKL_NUM_THREADS"}


@contextmanager
def native_thread_limit(threads: int, environment_wins: bool = True) -> Iterator[dict[str, int]]:
    """While active, OpenMP and BLAS thread pools use at most ``threads`` threads.

    When ``environment_wins`` (``threads`` is a default, not the spec's choice), a variable of
    ``THREAD_VARIABLES`` already set (to a whole number of at least 1) in the task's environment takes
    precedence for its library: ``OMP_NUM_THREADS`` for OpenMP (scikit-learn's histogram gradient
    boosting, for one), ``OPENBLAS_NUM_THREADS`` for OpenBLAS, ``MKL_NUM_THREADS`` for MKL. Every other
    variable is set to ``threads`` (for the libraries the task loads from now on, and for the processes it
    starts), and the pools of the libraries already loaded are limited with threadpoolctl (another
    library, BLIS say, to ``threads``). The variables are restored on exit. Yields the limit of each
    library family (threadpoolctl's internal API name).
    """
    from threadpoolctl import ThreadpoolController

    limits, previous = {}, {}
    for api, variable in THREAD_VARIABLES.items():
        given = os.environ.get(variable, "").strip()
        if environment_wins and given.isdigit() and int(given) >= 1:
            limits[api] = int(given)
        else:
            previous[variable] = os.environ.get(variable)
            os.environ[variable] = str(threads)
            limits[api] = threads
    controller = ThreadpoolController()
    by_library = {lib.filepath: limits.get(lib.internal_api, threads) for lib in controller.lib_controllers}
    try:
        with controller.limit(limits=by_library):
            yield limits
    finally:
        for variable, value in previous.items():
            if value is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = value


def uri_of(value: Upstream, key: str = "uri") -> str:
    """A URI given directly, or read from an upstream task's result (``ingest.output``)."""
    if isinstance(value, Mapping):
        return str(value[key])
    return str(value)


class MLCBaseOperator(ParamsSerializedOnce, BaseOperator):
    """Base of the life-cycle operators.

    :param spec: the model spec, as a loaded ``ModelLifecycleSpec`` or the path of its YAML file.
    :param artifact_root: overrides the spec's ``storage.artifact_root`` (a folder or ``s3://`` prefix).
    :param mlflow_conn_id: overrides the spec's ``mlflow.conn_id``.
    """

    ui_color = "#d6eaf8"
    #: The result (XCom value) of the task's last execution, which its OpenLineage facets describe.
    _lineage_result: Any = None

    def __init__(
        self,
        *,
        spec: ModelLifecycleSpec | str | os.PathLike[str],
        artifact_root: str | None = None,
        mlflow_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.artifact_root = artifact_root
        self.mlflow_conn_id = mlflow_conn_id

    @cached_property
    def model_spec(self) -> ModelLifecycleSpec:
        if isinstance(self.spec, ModelLifecycleSpec):
            return self.spec
        return load_spec(self.spec)

    @cached_property
    def mlflow_target(self) -> MlflowTarget:
        """Where MLflow lives, from the task's MLflow connection: looked up once per task."""
        return MLflowHook(self.mlflow_conn_id or self.model_spec.mlflow.conn_id).get_conn()

    @cached_property
    def storage(self) -> Storage:
        from airflow_mlc.core.storage import Storage
        from airflow_mlc.hooks.storage import s3_options

        settings = self.model_spec.storage
        root = (
            self.artifact_root
            or settings.artifact_root
            or os.environ.get("MLC_ARTIFACT_ROOT")
            or str(airflow_home() / "mlc" / "artifacts")
        )
        options = s3_options(settings.conn_id) if root.startswith("s3://") else {}
        return Storage(root, options)

    def output_uri(self, context: Context, filename: str) -> str:
        """Where this task writes ``filename`` for this DAG run: re-runs overwrite, other runs never do."""
        return self.storage.uri(self.model_spec.name, self.dag_id, context["run_id"], self.task_id, filename)

    def run_tags(self, context: Context) -> dict[str, str]:
        """The tags that tie MLflow objects to this Airflow task."""
        from airflow_mlc.core import tracking

        return {
            tracking.TAG_DAG_ID: self.dag_id,
            tracking.TAG_RUN_ID: context["run_id"],
            tracking.TAG_TASK_ID: self.task_id,
            tracking.TAG_MODEL: self.model_spec.name,
        }

    def move_log(self, client: Any, context: Context) -> MoveLog:
        """Where this task records the champion moves it makes, and who it acts for."""
        from airflow_mlc.core import tracking
        from airflow_mlc.core.registry import MoveLog

        experiment_id = tracking.ensure_experiment(
            client, self.model_spec.registry_experiment_name, self.mlflow_target.artifact_location
        )
        dag_run = context.get("dag_run")
        run_type = getattr(dag_run, "run_type", None)
        user = getattr(dag_run, "triggering_user_name", None) or getattr(run_type, "value", run_type) or "airflow"
        key = {k: v for k, v in self.run_tags(context).items() if k != tracking.TAG_MODEL}
        return MoveLog(experiment_id, key, moved_by=str(user))

    @property
    def spec_threads(self) -> int | None:
        """The native (OpenMP, BLAS) threads the spec gives this task; None: the default (see :attr:`threads`)."""
        return None

    @property
    def threads(self) -> int:
        """The native threads this task may use: :attr:`spec_threads`, else its pool slots."""
        return self.spec_threads or int(self.pool_slots)

    def execute(self, context: Context) -> Any:
        """Run the phase within the task's native thread limit (see ``native_thread_limit``)."""
        self._lineage_result = None
        with native_thread_limit(self.threads, environment_wins=self.spec_threads is None):
            try:
                result = self.execute_phase(context)
            except BadInputError as exc:
                raise AirflowFailException(str(exc)) from exc
        self._lineage_result = result
        return result

    def execute_phase(self, context: Context) -> Any:
        """The phase's work; a ``BadInputError`` fails the task without retries."""
        raise NotImplementedError

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """What the task read and wrote, for the OpenLineage provider (docs/lineage.md).

        The inputs and outputs are those of :meth:`lineage_inputs` and :meth:`lineage_outputs`, given the
        task's result (None when it failed), and the job's ``sql`` facet is :meth:`lineage_query`.

        Args:
            task_instance: The finished task instance (unused: the result is kept by ``execute``).

        Returns:
            An ``OperatorLineage``, or None when apache-airflow-providers-openlineage is not installed.
        """
        from airflow_mlc import lineage

        if not lineage.provider_installed():
            return None
        result = self._lineage_result if isinstance(self._lineage_result, Mapping) else None
        return lineage.operator_lineage(self.lineage_inputs(result), self.lineage_outputs(result), self.lineage_query())

    def lineage_inputs(self, result: Mapping[str, Any] | None) -> list[LineageDataset]:
        """The datasets the task read, given its result (None when it failed); none by default."""
        return []

    def lineage_outputs(self, result: Mapping[str, Any] | None) -> list[LineageDataset]:
        """The datasets the task wrote, given its result (None when it failed); none by default."""
        return []

    def lineage_query(self) -> str | None:
        """The SQL query the task ran against the source, if any; none by default."""
        return None

    def lineage_run(self, experiment_id: Any, run_id: Any) -> LineageDataset:
        """An MLflow run of the task's tracking server, as a lineage dataset."""
        from airflow_mlc.lineage import mlflow_run_dataset

        return mlflow_run_dataset(self.mlflow_target.tracking_uri, str(experiment_id), str(run_id))

    def lineage_versions(self, *versions: Any) -> list[LineageDataset]:
        """Versions of the spec's registered model (the empty ones left out), as lineage datasets of type MODEL."""
        from airflow_mlc.lineage import model_version_dataset

        known = [version for version in versions if version not in (None, "", "None")]
        if not known:
            return []
        target = self.mlflow_target
        registry = target.registry_uri or target.tracking_uri
        return [model_version_dataset(registry, self.model_spec.registered_model_name, v) for v in known]
