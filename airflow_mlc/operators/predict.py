"""BatchPredictOperator: score the run's data window with the champion, chunk by chunk."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from airflow_mlc.errors import BadInputError
from airflow_mlc.links.mlflow import MLflowRunLink, run_url
from airflow_mlc.operators.base import MLCBaseOperator
from airflow_mlc.operators.ingest import naming_the_spec, run_window

if TYPE_CHECKING:
    from airflow.sdk import Context


def sql_engine(conn_id: str) -> Any:
    """A SQLAlchemy engine from an Airflow SQL connection."""
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id).get_hook().get_sqlalchemy_engine()


class BatchPredictOperator(MLCBaseOperator):
    """Score the run's data window and write the predictions to the interval's Parquet partition.

    The window ends at ``window_end`` (default: the run's data interval end, ``run_after`` for a
    manual run) and starts at ``window_start`` (default: the data interval's start when it is not
    empty, else ``prediction.window_days`` before the end). The source is read as the ingest task
    reads it, but ``chunk_rows`` rows at a time, so the window is never held in memory whole.

    The model is the pinned ``model_version`` (else the spec's ``prediction.model_version``), else
    the version the ``champion`` alias points at, resolved once before scoring. Each row of
    ``<name>/predictions/interval=<end>/predictions.parquet`` under the artifact root holds the
    ``prediction.keep_columns`` (default: the time column), ``prediction``, ``model_version``, ``role``
    (``champion``, or ``pinned`` for a pinned version), ``run_id`` (the Airflow run), ``window_start``
    and ``window_end``. The file is keyed by the
    interval, not by the run, and replaced only when every chunk was scored: re-running an interval
    replaces its predictions, other intervals are untouched. With ``prediction.table`` the same rows
    go to that SQL table in one transaction that first deletes the interval's earlier rows.

    Row counts, throughput and the distribution of the predictions are logged to one MLflow run per
    DAG run in the experiment ``<experiment>/predictions``, named after the window
    (``predict 2011-04-01 .. 2011-04-08``).

    :param window_start: ISO 8601 start of the window (templated).
    :param window_end: ISO 8601 end of the window, exclusive (templated).
    :param model_version: the model version to score with (templated); overrides the spec's.
    :param chunk_rows: rows scored at a time; overrides the spec's ``prediction.chunk_rows``.
    With ``prediction.rollout.mode: shadow``, the version ``challenger`` points at (when it is not the
    served one) scores every chunk too, into ``<name>/shadow-predictions/interval=<end>/shadow.parquet``
    (``model_version`` the challenger's, ``role`` ``shadow``), never into the served file or table; the
    stats say how far the two agree. With ``canary``, the challenger serves the rows whose hash of
    ``prediction.rollout.key`` falls below its step's share, and its rows say ``role`` ``canary`` and
    its ``model_version`` (docs/rollout.md).

    :return: ``{"uri", "rows", "model_version", "window", "stats", "table", "shadow", "canary"}``; ``stats``
        holds ``rows``, ``seconds``, ``rows_per_second`` and, for a regression, ``mean``, ``std``,
        ``min``, ``max``, ``p05``, ``p50``, ``p95``, for a classification ``class_counts`` and
        ``class_shares``; ``shadow`` is None, or ``{"version", "uri", "rows"}`` with ``agreement`` (a
        classification: the share of equal labels) or ``mean_abs_difference`` and ``difference_mean``,
        ``_std``, ``_p05``, ``_p50``, ``_p95`` (a regression: shadow minus served); ``canary`` is None, or
        ``{"version", "share", "rows"}``.
    """

    template_fields: Sequence[str] = ("window_start", "window_end", "model_version")
    operator_extra_links = (MLflowRunLink(),)

    def __init__(
        self,
        *,
        window_start: str | None = None,
        window_end: str | None = None,
        model_version: str | None = None,
        chunk_rows: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.window_start = window_start
        self.window_end = window_end
        self.model_version = model_version
        self.chunk_rows = chunk_rows

    def execute_phase(self, context: Context) -> dict[str, Any]:

        from airflow_mlc.core import tracking
        from airflow_mlc.core.predict import ROLE, predict_window, read_chunks, sql_sink
        from airflow_mlc.core.rollout import challenger_exposure
        from airflow_mlc.core.storage import remove, safe_part
        from airflow_mlc.hooks.storage import s3_options

        spec, settings = self.model_spec, self.model_spec.prediction
        window = run_window(
            context, spec, self.window_start, self.window_end, settings.window_days, prefer_data_interval=True
        )
        bounds = window.as_dict()
        if bounds["end"] is None:
            raise BadInputError(f"the prediction window {window} has no end: give window_end")
        target = self.mlflow_target
        client = target.activate()
        version, role = self.version_to_score(client)
        model = tracking.load_model(f"models:/{spec.registered_model_name}/{version}", flavor="pyfunc")

        source = spec.source
        source_options = s3_options(source.conn_id) if (source.path or "").startswith("s3://") else {}
        source_engine = sql_engine(source.conn_id) if source.sql is not None and source.conn_id else None
        chunks = read_chunks(source, window, self.chunk_rows or settings.chunk_rows, source_options, source_engine)
        keep_columns = settings.keep_columns
        if keep_columns is None:
            keep_columns = [source.time_column] if source.time_column else []
        interval = f"interval={safe_part(bounds['end'])}"
        out_uri = self.storage.uri(spec.name, "predictions", interval, "predictions.parquet")
        # beside the predictions, not among them: a reader of the predictions folder never sees a shadow row
        shadow_uri = self.storage.uri(spec.name, "shadow-predictions", interval, "shadow.parquet")
        shadow, canary, exposure = challenger_exposure(client, spec, version, shadow_uri)
        if exposure:
            self.log.info("%s", exposure)
        extra_columns = {
            "model_version": version,
            ROLE: role,
            "run_id": context["run_id"],
            "window_start": bounds["start"] or "",
            "window_end": bounds["end"],
        }
        self.log.info("Scoring %s version %s on the window %s", spec.registered_model_name, version, window)
        with naming_the_spec(spec), ExitStack() as stack:
            stack.callback(getattr(chunks, "close", lambda: None))  # a failed run lets go of the source at once
            sink = None
            if settings.table and settings.conn_id:
                sink = stack.enter_context(
                    sql_sink(sql_engine(settings.conn_id), settings.table, bounds["start"] or "", bounds["end"])
                )
            stats = predict_window(
                model,
                chunks,
                spec.features.columns,
                keep_columns,
                out_uri,
                self.storage.options,
                extra_columns,
                spec.task,
                sink,
                shadow,
                canary,
            )
        if shadow is None:  # an earlier run's shadow predictions of this interval no longer describe it
            remove(shadow_uri, self.storage.options)
        self.log.info(
            "Wrote %d predictions to %s%s (%.0f rows/s)",
            stats.rows,
            out_uri,
            f" and the table {settings.table}" if settings.table else "",
            stats.rows_per_second,
        )

        experiment = f"{spec.experiment_name}/predictions"
        experiment_id = tracking.ensure_experiment(client, experiment, target.artifact_location)
        run_id = tracking.get_or_create_run(
            client,
            experiment_id,
            self.prediction_run_key(context),
            self.prediction_run_tags(bounds, version, out_uri),
            run_name=self.prediction_run_name(bounds),
        )
        client.log_batch(run_id, metrics=tracking.metric_entities(stats.metrics()))
        MLflowRunLink.persist(context, run_url(target.ui_url, experiment_id, run_id))
        return {
            "uri": out_uri,
            "rows": stats.rows,
            "model_version": version,
            "window": bounds,
            "stats": stats.as_dict(),
            "table": settings.table,
            "shadow": stats.shadow,
            "canary": stats.canary,
        }

    def version_to_score(self, client: Any) -> tuple[str, str]:
        """The pinned model version, else the one ``champion`` points at (checked to exist), and its role."""
        from mlflow.exceptions import MlflowException

        from airflow_mlc.core.predict import CHAMPION_ROLE, PINNED_ROLE
        from airflow_mlc.core.registry import CHAMPION, version_by_alias

        name = self.model_spec.registered_model_name
        given = None if self.model_version in (None, "", "None") else str(self.model_version)  # "None": empty form
        pinned = given or self.model_spec.prediction.model_version
        if not pinned:
            champion = version_by_alias(client, name, CHAMPION)
            if champion is None:
                raise BadInputError(f"no champion to score with: model {name!r} has no '{CHAMPION}' version")
            return str(champion.version), CHAMPION_ROLE
        try:
            return str(client.get_model_version(name, str(pinned)).version), PINNED_ROLE
        except MlflowException:
            raise BadInputError(f"model {name!r} has no version {pinned!r} to score with") from None

    def prediction_run_key(self, context: Context) -> dict[str, str]:
        """The tags that find this DAG run's prediction run again (a retry logs to the same run)."""
        from airflow_mlc.core import tracking
        from airflow_mlc.core.predict import KIND_PREDICTION

        return {
            tracking.TAG_KIND: KIND_PREDICTION,
            tracking.TAG_MODEL: self.model_spec.name,
            tracking.TAG_DAG_ID: self.dag_id,
            tracking.TAG_RUN_ID: context["run_id"],
        }

    @staticmethod
    def prediction_run_name(bounds: dict[str, str | None]) -> str:
        """The prediction run's name, after its window: ``predict 2011-04-01 .. 2011-04-08``."""
        from airflow_mlc.core.registry import readable_time

        start, end = readable_time(bounds["start"]), readable_time(bounds["end"])
        return f"predict {start} .. {end}" if start else f"predict up to {end}"

    @staticmethod
    def prediction_run_tags(bounds: dict[str, str | None], version: str, out_uri: str) -> dict[str, str]:
        from airflow_mlc.core import tracking

        return {
            tracking.TAG_WINDOW_START: bounds["start"] or "",
            tracking.TAG_WINDOW_END: bounds["end"] or "",
            tracking.TAG_MODEL_VERSION: version,
            tracking.TAG_PREDICTIONS_URI: out_uri,
        }
