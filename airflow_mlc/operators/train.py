"""TrainModelOperator: fit the spec's pipeline (with its search) and log the run to MLflow."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlc.links.mlflow import MLflowRunLink, run_url
from airflow_mlc.operators.base import MLCBaseOperator, UpstreamResult, result_of
from airflow_mlc.run_context import retrain_request

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlc.lineage import LineageDataset


class TrainModelOperator(MLCBaseOperator):
    """Train on the split and log params, CV and test metrics, datasets and the model to MLflow.

    The MLflow run is tagged with the Airflow ``dag_id``, ``run_id`` and ``task_id``: a retry of the
    same task finds its finished run again instead of logging a duplicate. A run started by a
    retraining event records that event (asset, source run, report, window) as ``mlc.triggered_by``;
    the register task copies it onto the model version.

    :param split: the prepare task's result (``train_uri``, ``test_uri``, ``fingerprint``, ``window``).
    :return: ``{"run_id", "experiment_id", "model_uri", "best_params", "cv_score", "test_metrics", "reused",
        "classes", "positive_class"}``.
    """

    template_fields: Sequence[str] = ("split",)
    operator_extra_links = (MLflowRunLink(),)

    def __init__(self, *, split: UpstreamResult, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.split = split

    @property
    def spec_threads(self) -> int | None:
        """The spec's ``model.threads``."""
        return self.model_spec.model.threads

    def execute_phase(self, context: Context) -> dict[str, Any]:
        from airflow_mlc.core import tracking
        from airflow_mlc.core.storage import read_parquet
        from airflow_mlc.core.train import train_and_log

        split, options = result_of(self.split, "split"), self.storage.options
        target = self.mlflow_target
        window = split.get("window") or {}
        tags = {
            **self.run_tags(context),
            tracking.TAG_FINGERPRINT: str(split.get("fingerprint", "")),
            tracking.TAG_WINDOW_START: str(window.get("start") or ""),
            tracking.TAG_WINDOW_END: str(window.get("end") or ""),
            tracking.TAG_TRAIN_DATA: split["train_uri"],
            tracking.TAG_TEST_DATA: split["test_uri"],
            tracking.TAG_SPLIT_RULE: str(split.get("split_rule", "")),
        }
        request = retrain_request(context, self.model_spec.retrain_asset_uri)
        if request:
            tags[tracking.TAG_TRIGGERED_BY] = json.dumps(request, sort_keys=True, default=str)
        result = train_and_log(
            self.model_spec,
            read_parquet(split["train_uri"], options),
            read_parquet(split["test_uri"], options),
            target,
            tags,
            (split["train_uri"], split["test_uri"]),
            threads=self.threads,
        )
        self.log.info("MLflow run %s (reused: %s): test metrics %s", result.run_id, result.reused, result.test_metrics)
        MLflowRunLink.persist(context, run_url(target.ui_url, result.experiment_id, result.run_id))
        return result.as_dict()

    def lineage_inputs(self, result: Mapping[str, Any] | None) -> list[LineageDataset]:
        """The training and test sets."""
        from airflow_mlc.lineage import file_dataset

        split = self.split if isinstance(self.split, Mapping) else {}
        return [file_dataset(split[key]) for key in ("train_uri", "test_uri") if split.get(key)]

    def lineage_outputs(self, result: Mapping[str, Any] | None) -> list[LineageDataset]:
        """The MLflow run: parameters, metrics and the fitted model."""
        return [self.lineage_run(result["experiment_id"], result["run_id"])] if result else []
