"""DataAvailableSensor: wait until the spec's source holds enough rows for the run's data window."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlc.operators.ingest import run_window
from airflow_mlc.sensors.base import ProbeSensor, SpecArg

if TYPE_CHECKING:
    from airflow.sdk import Context


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
            "source": spec.source.model_dump(mode="json"),
            "window_start": window["start"],
            "window_end": window["end"],
            "min_rows": self.min_rows if self.min_rows is not None else spec.monitoring.min_rows,
        }
