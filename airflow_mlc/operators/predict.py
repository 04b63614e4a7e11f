"""BatchPredictOperator: score the run's data window with the champion, chunk by chunk."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from airflow_mlc.errors import BadInputError
from airflow_mlc.links.mlflow import MLflowRunLink, run_url
from airflow_mlc.operators.base import MLCBaseOperator
from airflow_mlc.run_context import naming_the_spec, rendered, run_window

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlc.lineage import LineageDataset


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
        from airflow_mlc.core.predict import sql_sink
        from airflow_mlc.core.serve import record_prediction_run, serve_window, version_to_serve
        from airflow_mlc.hooks.source import open_spec_source, sql_engine

        spec, settings = self.model_spec, self.model_spec.prediction
        window = run_window(
            context, spec, self.window_start, self.window_end, settings.window_days, prefer_data_interval=True
        )
        bounds = window.as_dict()
        if bounds["end"] is None:
            raise BadInputError(f"the prediction window {window} has no end: give window_end")
        target = self.mlflow_target
        client = target.activate()
        served = version_to_serve(client, spec, rendered(self.model_version))
        self.log.info("Scoring %s version %s (%s) on the window %s", spec.registered_model_name, *served, window)
        with naming_the_spec(spec), ExitStack() as stack:
            chunks = stack.enter_context(open_spec_source(spec.source)).chunks(
                window, self.chunk_rows or settings.chunk_rows
            )
            stack.callback(chunks.close)  # a failed run lets go of the source's cursor at once
            sink = None
            if settings.table and settings.conn_id:
                engine = sql_engine(settings.conn_id)
                stack.callback(engine.dispose)  # after the sink's transaction has ended
                sink = stack.enter_context(sql_sink(engine, settings.table, bounds["start"] or "", str(bounds["end"])))
            result = serve_window(client, spec, self.storage, bounds, chunks, served, context["run_id"], sink, self.log)
        stats = result.stats
        table = f" and the table {settings.table}" if settings.table else ""
        self.log.info(
            "Wrote %d predictions to %s%s (%.0f rows/s)", stats.rows, result.uri, table, stats.rows_per_second
        )
        run_key = {tracking.TAG_DAG_ID: self.dag_id, tracking.TAG_RUN_ID: context["run_id"]}
        experiment_id, run_id = record_prediction_run(client, spec, target.artifact_location, run_key, result)
        MLflowRunLink.persist(context, run_url(target.ui_url, experiment_id, run_id))
        return result.as_dict()

    def lineage_inputs(self, result: Mapping[str, Any] | None) -> list[LineageDataset]:
        """The source, the model version served and any challenger version exposed (shadow, canary)."""
        from airflow_mlc.lineage import source_datasets

        exposed = [(result or {}).get(kind) or {} for kind in ("shadow", "canary")]
        versions = self.lineage_versions((result or {}).get("model_version"), *(e.get("version") for e in exposed))
        return source_datasets(self.model_spec.source) + versions

    def lineage_outputs(self, result: Mapping[str, Any] | None) -> list[LineageDataset]:
        """The interval's predictions file, the prediction table when the spec has one, a shadow's file."""
        from airflow_mlc.lineage import file_dataset, sql_connection_location, sql_table_dataset

        if result is None:
            return []
        outputs = [file_dataset(result["uri"], rows=result.get("rows"))]
        settings = self.model_spec.prediction
        if result.get("table") and settings.conn_id:
            namespace, database, _ = sql_connection_location(settings.conn_id)
            outputs.append(sql_table_dataset(namespace, result["table"], database, rows=result.get("rows")))
        shadow = result.get("shadow") or {}
        if shadow.get("uri"):
            outputs.append(file_dataset(shadow["uri"], rows=shadow.get("rows")))
        return outputs

    def lineage_query(self) -> str | None:
        """The source's query, for a SQL source."""
        return self.model_spec.source.sql
