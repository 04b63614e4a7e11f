"""DataAvailableSensor: wait until the spec's source holds enough rows for the run's data window."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlc.errors import BadInputError
from airflow_mlc.run_context import run_window
from airflow_mlc.sensors.base import ProbeSensor, SpecArg

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlc.spec import ModelLifecycleSpec


class DataAvailableSensor(ProbeSensor):
    """Wait until the source holds at least ``min_rows`` rows in the run's data window.

    The window is resolved exactly as ``IngestOperator`` resolves it, with the same arguments: it
    ends at ``window_end`` (default: the run's data interval end, or ``run_after`` for a manual run)
    and starts at ``window_start`` (default: the data interval's start with ``prefer_data_interval``
    when it is not empty, else ``lookback_days`` before the end). A file that does not exist yet
    counts as no rows; a SQL source is counted with ``SELECT COUNT(*)`` over its query, with the
    window's bounds in the time column's ``source.time_unit`` when the spec gives one. The time
    column is read as ingest reads it (``source.time_format``, ``source.time_unit``).

    A source that can never be counted fails the sensor without retries: a malformed file, duplicate
    column names, a wrong query (no such table or column, a syntax error), or a time column that
    holds no times (integers without a ``time_unit`` among them). A database that cannot be reached
    is tried again.

    :param spec: the model spec, as a loaded ``ModelLifecycleSpec`` or the path of its YAML file.
    :param window_start: ISO 8601 start of the window (templated).
    :param window_end: ISO 8601 end of the window, exclusive (templated).
    :param lookback_days: window length when no start is given; default: the spec's ``monitoring.window_days``.
    :param prefer_data_interval: use the run's data interval as the window when it is not empty.
    :param min_rows: rows needed; default: the spec's ``monitoring.min_rows``.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :return: ``{"rows", "min_rows", "window": {"start", "end"}, "source"}`` (``source``: the path, or "sql").
    """

    probe = "data_available"
    template_fields: Sequence[str] = ("window_start", "window_end")

    def __init__(
        self,
        *,
        spec: SpecArg,
        window_start: str | None = None,
        window_end: str | None = None,
        lookback_days: int | None = None,
        min_rows: int | None = None,
        prefer_data_interval: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(spec=spec, **kwargs)
        self.prefer_data_interval = prefer_data_interval
        self.window_start = window_start
        self.window_end = window_end
        self.lookback_days = lookback_days
        self.min_rows = min_rows

    def probe_arguments(self, context: Context) -> dict[str, Any]:
        spec = self.model_spec
        lookback = self.lookback_days if self.lookback_days is not None else spec.monitoring.window_days
        window = run_window(
            context, spec, self.window_start, self.window_end, lookback, self.prefer_data_interval
        ).as_dict()
        return {
            **self.source_arguments(spec),
            "window_start": window["start"],
            "window_end": window["end"],
            "min_rows": self.min_rows if self.min_rows is not None else spec.monitoring.min_rows,
        }

    def source_arguments(self, spec: ModelLifecycleSpec) -> dict[str, Any]:
        """How the probe finds the source: ``{"source": ...}``, or where to read it for a ``url`` source.

        A deferred sensor's probe arguments are stored in Airflow's database, and a SQLAlchemy URL may
        hold a password. So a source with a ``url`` travels as ``{"spec_file", "spec_name"}``, the spec
        file the probe reads it from again, never as its value. A spec that was not read from a file
        and whose URL holds a password cannot defer.

        Raises:
            BadInputError: The spec has no file, its URL holds a password, and the sensor is deferrable.
        """
        source = spec.source
        if source.url is None:
            return {"source": source.model_dump(mode="json")}
        file = Path(spec.origin)
        if spec.origin != "<spec>" and file.is_file():
            return {"spec_file": str(file.resolve()), "spec_name": spec.name}
        if self.deferrable and url_has_secret(source.url):
            raise BadInputError(
                f"{spec.origin}: source.url holds a password, and a deferrable sensor stores its arguments in "
                "Airflow's database: load the spec from its file, or give the database as source.conn_id"
            )
        return {"source": source.model_dump(mode="json")}


#: Query keys of a SQLAlchemy URL that may hold a secret (``?password=...``, ``?odbc_connect=...PWD=...``).
SECRET_QUERY_KEYS = ("pass", "pwd", "secret", "token", "key", "odbc_connect", "credential")


def url_has_secret(url: str) -> bool:
    """Whether a SQLAlchemy URL holds a password, or a query key that may carry one (also: unreadable)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return True
    return bool(parsed.password) or any(part in key.lower() for key in parsed.query for part in SECRET_QUERY_KEYS)
