"""IngestOperator: the run's data window from the spec's source, as a Parquet snapshot."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_mlc.errors import BadInputError
from airflow_mlc.operators.base import MLCBaseOperator, retrain_request

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlc.core.window import Window
    from airflow_mlc.spec import ModelLifecycleSpec


def default_window_end(context: Context) -> datetime | None:
    """The end of the run's data interval; a manual run without one ends at its ``run_after``."""
    end = context.get("data_interval_end")
    if end is None:
        end = getattr(context.get("dag_run"), "run_after", None)
    return end


@contextmanager
def naming_the_spec(spec: ModelLifecycleSpec) -> Iterator[None]:
    """Add the spec file to a bad-input error (a malformed source, a wrong query ...): the file to fix."""
    try:
        yield
    except BadInputError as exc:
        if spec.origin == "<spec>" or spec.origin in str(exc):
            raise
        raise type(exc)(f"{exc} (model spec {spec.origin})") from exc


def run_window(
    context: Context,
    spec: ModelLifecycleSpec,
    window_start: str | None,
    window_end: str | None,
    lookback_days: int | None = None,
    prefer_data_interval: bool = False,
) -> Window:
    """The data window of a run, shared by ingest and the data sensor (see ``IngestOperator``)."""
    from airflow_mlc.core.window import parse_moment, resolve_window

    end = window_end
    request = retrain_request(context, spec.retrain_asset_uri)
    if not end and request:
        end = (request.get("window") or {}).get("end")
    default_end = default_window_end(context)
    start = window_start
    interval_start = parse_moment(context.get("data_interval_start"))
    interval_end = parse_moment(default_end)
    if (
        not start
        and not end
        and prefer_data_interval
        and interval_start
        and interval_end
        and interval_start < interval_end
    ):
        start = interval_start.isoformat()
    return resolve_window(start, end, default_end, lookback_days or spec.window.lookback_days)


class IngestOperator(MLCBaseOperator):
    """Read the source for the run's data window and write ``snapshot.parquet`` under the artifact root.

    The window ends at ``window_end``; by default at the end of the window named by the retraining
    event that triggered the run, else at the run's data interval end (``run_after`` for a manual
    run). It starts at ``window_start``; by default at the data interval's start when
    ``prefer_data_interval`` is set and the interval is not empty, else ``lookback_days`` (default:
    the spec's ``window.lookback_days``) before the end, or with no bound. A SQL source receives the
    bounds as ``:window_start`` and ``:window_end``: naive UTC datetimes, or with ``source.time_unit``
    a year or seconds or milliseconds since 1970. Rows are then kept inside the window on the
    ``time_column``, read as ``source.time_format`` / ``source.time_unit`` say.

    A source that cannot be read (a missing or malformed file, duplicate column names, a wrong
    query, a time column without times) fails the task without retries; a database that cannot be
    reached is retried.

    :param window_start: ISO 8601 start of the window (templated).
    :param window_end: ISO 8601 end of the window, exclusive (templated).
    :param lookback_days: overrides the spec's ``window.lookback_days``.
    :param prefer_data_interval: use the run's data interval as the window when it is not empty.
    :return: ``{"uri", "rows", "fingerprint", "columns", "window"}``.
    """

    template_fields: Sequence[str] = ("window_start", "window_end")

    def __init__(
        self,
        *,
        window_start: str | None = None,
        window_end: str | None = None,
        lookback_days: int | None = None,
        prefer_data_interval: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.window_start = window_start
        self.window_end = window_end
        self.lookback_days = lookback_days
        self.prefer_data_interval = prefer_data_interval

    def execute_phase(self, context: Context) -> dict[str, Any]:
        from airflow_mlc.core.ingest import ingest
        from airflow_mlc.hooks.storage import s3_options

        spec = self.model_spec
        window = self.run_window(context)
        self.log.info("Ingesting %s for the window %s", spec.name, window)
        source = spec.source
        source_options = s3_options(source.conn_id) if (source.path or "").startswith("s3://") else {}
        with naming_the_spec(spec):
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

    def run_window(self, context: Context) -> Window:
        """The window this run ingests (see the class docstring for the defaults)."""
        request = retrain_request(context, self.model_spec.retrain_asset_uri)
        if request and not self.window_end:
            self.log.info("Triggered by %s from run %s", request["asset"], request["source_run_id"])
        return run_window(
            context, self.model_spec, self.window_start, self.window_end, self.lookback_days, self.prefer_data_interval
        )

    def _sql_engine(self) -> Any:
        """A SQLAlchemy engine from the source's Airflow SQL connection, for a SQL source."""
        source = self.model_spec.source
        if source.sql is None or source.conn_id is None:
            return None
        from airflow.sdk import BaseHook

        hook = BaseHook.get_connection(source.conn_id).get_hook()
        return hook.get_sqlalchemy_engine()
