"""EvaluateModelOperator: score the candidate and the champion on the newest labelled rows; apply the gates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlc.links.mlflow import MLflowRunLink, run_url
from airflow_mlc.operators.base import MLCBaseOperator, Upstream, UpstreamResult, result_of, uri_of

if TYPE_CHECKING:
    from airflow.sdk import Context


class EvaluateModelOperator(MLCBaseOperator):
    """Compute the task's metrics for the candidate and, when a champion exists, for the champion.

    Both are scored on the newest labelled window: the test rows newer than the champion's training
    data (all test rows when there is no champion, no time column, or no such row).

    The candidate passes when the gate metric is within ``gates.max`` / ``gates.min`` and beats the
    champion by ``gates.min_improvement`` (relative). A failed gate does not fail the task: the result
    says ``passed: false`` and the register task keeps ``champion`` where it is. The metrics are also
    logged to the candidate's MLflow run (``eval_*``, ``champion_*``).

    :param split: the prepare task's result (for ``test_uri``) or the test set's URI.
    :param training: the train task's result (for ``model_uri`` and ``run_id``).
    :param gate_max: overrides ``gates.max`` for this run (templated; None keeps the spec's).
    :param gate_min: overrides ``gates.min``.
    :param min_improvement: overrides ``gates.min_improvement``.
    :return: ``{"passed", "metric", "metrics", "reasons", "champion_version", "champion_metrics",
        "scored_rows", "scored_on"}``.
    """

    template_fields: Sequence[str] = ("split", "training", "gate_max", "gate_min", "min_improvement")
    operator_extra_links = (MLflowRunLink(),)

    def __init__(
        self,
        *,
        split: Upstream,
        training: UpstreamResult,
        gate_max: float | str | None = None,
        gate_min: float | str | None = None,
        min_improvement: float | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.split = split
        self.training = training
        self.gate_max = gate_max
        self.gate_min = gate_min
        self.min_improvement = min_improvement

    def execute_phase(self, context: Context) -> dict[str, Any]:

        from airflow_mlc.core import tracking
        from airflow_mlc.core.evaluate import effective_gates, evaluate
        from airflow_mlc.core.registry import CHAMPION, version_by_alias
        from airflow_mlc.core.storage import read_parquet

        spec = self.model_spec
        training = result_of(self.training, "training")
        target = self.mlflow_target
        client = target.activate()
        test = read_parquet(uri_of(self.split, "test_uri"), self.storage.options)
        candidate = tracking.load_model(training["model_uri"])
        champion_version = version_by_alias(client, spec.registered_model_name, CHAMPION)
        champion = None
        if champion_version is not None:
            champion = tracking.load_model(f"models:/{spec.registered_model_name}@{CHAMPION}")
        gates = effective_gates(
            spec.gates, _number(self.gate_max), _number(self.gate_min), _number(self.min_improvement)
        )
        result = evaluate(
            spec,
            candidate,
            test,
            gates,
            champion,
            str(champion_version.version) if champion_version else None,
            champion_version.tags.get(tracking.TAG_WINDOW_END) if champion_version else None,
        )
        run_id = training["run_id"]
        client.log_batch(run_id, metrics=tracking.metric_entities({f"eval_{k}": v for k, v in result.metrics.items()}))
        if result.champion_metrics:
            client.log_batch(
                run_id,
                metrics=tracking.metric_entities({f"champion_{k}": v for k, v in result.champion_metrics.items()}),
            )
        client.set_tag(run_id, tracking.TAG_GATE_PASSED, str(result.passed).lower())
        self.log.info("Scored on %s", result.scored_on)
        self.log.info("Gate %s: %s", "passed" if result.passed else "failed", "; ".join(result.reasons))
        MLflowRunLink.persist(context, run_url(target.ui_url, training["experiment_id"], run_id))
        return result.as_dict()


def _number(value: float | str | None) -> float | None:
    """A templated number: '' and None mean unset."""
    if value is None or value == "" or value == "None":
        return None
    return float(value)
