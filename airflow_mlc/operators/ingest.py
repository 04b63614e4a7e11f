"""IngestOperator: the run's data window from the spec's source, as a Parquet snapshot."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlc.operators.base import MLCBaseOperator
from airflow_mlc.run_context import naming_the_spec, retrain_request, run_window

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlc.core.window import Window
    from airflow_mlc.lineage import LineageDataset


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
        from airflow_mlc.hooks.source import open_spec_source

        spec = self.model_spec
        window = self.run_window(context)
        self.log.info("Ingesting %s for the window %s", spec.name, window)
        with naming_the_spec(spec), open_spec_source(spec.source) as source:
            result = ingest(source, window, self.output_uri(context, "snapshot.parquet"), self.storage.options)
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

    def lineage_inputs(self, result: Mapping[str, Any] | None) -> list[LineageDataset]:
        """The source: its file, or the tables its query reads."""
        from airflow_mlc.lineage import source_datasets

        return source_datasets(self.model_spec.source)

    def lineage_outputs(self, result: Mapping[str, Any] | None) -> list[LineageDataset]:
        """The snapshot, with its columns, rows and fingerprint."""
        from airflow_mlc.lineage import file_dataset

        if result is None:
            return []
        return [file_dataset(result["uri"], result.get("columns") or (), result.get("rows"), result.get("fingerprint"))]

    def lineage_query(self) -> str | None:
        """The source's query, for a SQL source."""
        return self.model_spec.source.sql
