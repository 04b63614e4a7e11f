"""ValidateDataOperator: the spec's data contract, with an Evidently report of the checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlc.errors import DataError
from airflow_mlc.operators.base import MLCBaseOperator, Upstream, uri_of

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlc.lineage import LineageDataset


class ValidateDataOperator(MLCBaseOperator):
    """Check a snapshot against the spec's contract; fail (without retries) when it is broken.

    Checks: unique column names, required columns, numeric types, a usable target (a classification
    needs 2 or more classes, of any type), then Evidently tests for the row count, the share of nulls
    per column, allowed ranges and allowed categories; a category violation names the values found
    outside the allowed list, with their counts. Once the columns and types are right, the Evidently
    report is written as ``validation.html`` (and ``.json``) beside the task's other outputs, whether
    its tests pass or fail.

    :param snapshot: the snapshot's URI, or the ingest task's result (templated).
    :return: ``{"passed", "rows", "violations", "report_uri", "tests_run"}``.
    """

    template_fields: Sequence[str] = ("snapshot",)

    def __init__(self, *, snapshot: Upstream, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.snapshot = snapshot

    def execute_phase(self, context: Context) -> dict[str, Any]:
        from dataclasses import replace

        from airflow_mlc.core.storage import read_parquet
        from airflow_mlc.core.validate import save_report, validate_frame

        frame = read_parquet(uri_of(self.snapshot), self.storage.options)
        result, snapshot = validate_frame(frame, self.model_spec)
        if snapshot is not None:
            report_uri = save_report(snapshot, self.output_uri(context, "validation.html"), self.storage.options)
            result = replace(result, report_uri=report_uri)
            self.log.info("Validation report: %s", report_uri)
        if not result.passed:
            problems = "\n  - ".join(result.violations)
            spec = self.model_spec
            where = f" ({spec.origin})" if spec.origin != "<spec>" else ""
            raise DataError(f"the data breaks the contract of {spec.name!r}{where}:\n  - {problems}")
        self.log.info("%d rows pass %d contract tests", result.rows, result.tests_run)
        return result.as_dict()

    def lineage_inputs(self, result: Mapping[str, Any] | None) -> list[LineageDataset]:
        """The snapshot checked."""
        from airflow_mlc.lineage import file_dataset

        return [file_dataset(uri_of(self.snapshot))]

    def lineage_outputs(self, result: Mapping[str, Any] | None) -> list[LineageDataset]:
        """The validation report."""
        from airflow_mlc.lineage import file_dataset

        return [file_dataset(result["report_uri"])] if result and result.get("report_uri") else []
