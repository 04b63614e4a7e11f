"""IngestOperator: the run's data window from the spec's source, as a Parquet snapshot."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_mlc.operators.base import MLCBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


def default_window_end(context: Context) -> datetime | None:
    """The end of the run's data interval; a manual run without one ends at its ``run_after``."""
    end = context.get("data_interval_end")
    if end is None:
        end = getattr(context.get("dag_run"), "run_after", None)
    return end


class IngestOperator(MLCBaseOperator):
    """Read the source for the run's data window and write ``snapshot.parquet`` under the artifact root.

    The window ends at ``window_end`` (default: the run's data interval end, or ``run_after`` for a
    manual run) and starts at ``window_start`` (default: ``window.lookback_days`` before the end, or
    no bound). A SQL source receives the bounds as ``:window_start`` and ``:window_end``.

    :param window_start: ISO 8601 start of the window (templated).
    :param window_end: ISO 8601 end of the window, exclusive (templated).
    :return: ``{"uri", "rows", "fingerprint", "columns", "window"}``.
    """

    template_fields: Sequence[str] = ("window_start", "window_end")

    def __init__(self, *, window_start: str | None = None, window_end: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window_start = window_start
        self.window_end = window_end

    def execute_phase(self, context: Context) -> dict[str, Any]:
        from airflow_mlc.core.ingest import ingest
        from airflow_mlc.core.window import resolve_window
        from airflow_mlc.hooks.storage import s3_options

        spec = self.model_spec
        window = resolve_window(
            self.window_start, self.window_end, default_window_end(context), spec.window.lookback_days
        )
        self.log.info("Ingesting %s for the window %s", spec.name, window)
        source = spec.source
        source_options = s3_options(source.conn_id) if (source.path or "").startswith("s3://") else {}
        result = ingest(
            source,
            window,
            self.output_uri(context, "snapshot.parquet"),
            out_options=self.storage.options,
            source_options=source_options,
            engine=self._sql_engine(),
        )
        self.log.info("Wrote %d rows to %s (fingerprint %s)", result.rows, result.uri, result.fingerprint)
        return result.as_dict()

    def _sql_engine(self) -> Any:
        """A SQLAlchemy engine from the source's Airflow SQL connection, for a SQL source."""
        source = self.model_spec.source
        if source.sql is None or source.conn_id is None:
            return None
        from airflow.sdk import BaseHook

        hook = BaseHook.get_connection(source.conn_id).get_hook()
        return hook.get_sqlalchemy_engine()
