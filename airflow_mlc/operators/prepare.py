"""PrepareDataOperator: cleaning and a deterministic train/test split."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlc.operators.base import MLCBaseOperator, Upstream, uri_of

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlc.lineage import LineageDataset


class PrepareDataOperator(MLCBaseOperator):
    """Clean a snapshot as the spec asks, split it, and write ``train.parquet`` and ``test.parquet``.

    :param snapshot: the snapshot's URI, or the ingest task's result (templated).
    :return: ``{"train_uri", "test_uri", "train_rows", "test_rows", "dropped_rows", "fingerprint", "window",
        "split_rule"}``.
    """

    template_fields: Sequence[str] = ("snapshot",)

    def __init__(self, *, snapshot: Upstream, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.snapshot = snapshot

    def execute_phase(self, context: Context) -> dict[str, Any]:
        from airflow_mlc.core.prepare import prepare

        window = self.snapshot.get("window", {}) if isinstance(self.snapshot, Mapping) else {}
        result = prepare(
            self.model_spec,
            uri_of(self.snapshot),
            self.output_uri(context, "train.parquet"),
            self.output_uri(context, "test.parquet"),
            self.storage.options,
            window,
        )
        self.log.info("Split into %d training and %d test rows", result.train_rows, result.test_rows)
        return result.as_dict()

    def lineage_inputs(self, result: Mapping[str, Any] | None) -> list[LineageDataset]:
        """The snapshot split."""
        from airflow_mlc.lineage import file_dataset

        return [file_dataset(uri_of(self.snapshot))]

    def lineage_outputs(self, result: Mapping[str, Any] | None) -> list[LineageDataset]:
        """The training and test sets, with their rows."""
        from airflow_mlc.lineage import file_dataset

        if result is None:
            return []
        return [
            file_dataset(result["train_uri"], rows=result.get("train_rows")),
            file_dataset(result["test_uri"], rows=result.get("test_rows")),
        ]
