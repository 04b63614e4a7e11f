"""EvaluateModelOperator: score the candidate and the champion on the newest labelled rows; apply the gates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlc.links.mlflow import MLflowRunLink, run_url
from airflow_mlc.operators.base import MLCBaseOperator, Upstream, UpstreamResult, result_of, uri_of
from airflow_mlc.run_context import rendered

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlc.lineage import LineageDataset


class EvaluateModelOperator(MLCBaseOperator):
    """Score the candidate, compare it with the champion on rows neither trained on, and apply the gates.

    The rule (``docs/decisions.md``): the gate metric is defined; the candidate is significantly better
    than a trivial model on its test rows (``gates.beat_baseline``); ``gates.max`` / ``gates.min``
    hold; and with a champion, on at least ``gates.min_rows`` test rows the champion never trained on
    (the newest ones with a time column), the challenger's improvement reaches
    ``gates.min_improvement`` and the lower bound of its paired bootstrap interval at
    ``gates.confidence`` is above zero. A failed gate does not fail the task: the result says
    ``passed: false`` and the register task keeps ``champion`` where it is. The metrics are logged to
    the candidate's MLflow run (``eval_*`` on its test rows, ``champion_*`` on the compared rows). The
    governance checks (permutation importance by default; fairness, forbidden features and slices when the
    spec asks, docs/governance.md) are part of the verdict and logged as ``evaluation/governance.json``.

    :param split: the prepare task's result (``test_uri``, ``train_uri``) or the test set's URI.
    :param training: the train task's result (for ``model_uri`` and ``run_id``).
    :param gate_max: overrides ``gates.max`` for this run (templated; None keeps the spec's).
    :param gate_min: overrides ``gates.min``.
    :param min_improvement: overrides ``gates.min_improvement``.
    :return: ``{"passed", "metric", "metrics", "reasons", "champion_version", "champion_metrics",
        "scored_rows", "scored_on", "comparison", "baseline", "positive_class", "governance"}``;
        ``comparison`` and ``baseline`` are ``{"metric", "rows", "challenger", "champion", "improvement",
        "relative", "low", "high", "confidence", "rounds", "significant"}`` or None; ``governance`` maps each
        check that ran (``fairness``, ``explanations``, ``slices``) to ``{"name", "blocked", "reasons",
        "details"}``.
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
        from airflow_mlc.core.evaluate import effective_gates, evaluate_run

        training = result_of(self.training, "training")
        target = self.mlflow_target
        gates = effective_gates(
            self.model_spec.gates, _number(self.gate_max), _number(self.gate_min), _number(self.min_improvement)
        )
        train_uri = self.split.get("train_uri") if isinstance(self.split, Mapping) else None
        result = evaluate_run(
            self.model_spec,
            target.activate(),
            self.storage.options,
            gates,
            training,
            uri_of(self.split, "test_uri"),
            train_uri,
        )
        self.log.info("Compared on %s", result.scored_on)
        self.log.info("Gate %s: %s", "passed" if result.passed else "failed", "; ".join(result.reasons))
        MLflowRunLink.persist(context, run_url(target.ui_url, training["experiment_id"], training["run_id"]))
        return result.as_dict()

    def lineage_inputs(self, result: Mapping[str, Any] | None) -> list[LineageDataset]:
        """The test (and training) sets, the candidate's MLflow run and the champion compared with."""
        from airflow_mlc.lineage import file_dataset

        train_uri = self.split.get("train_uri") if isinstance(self.split, Mapping) else None
        inputs = [file_dataset(uri) for uri in (uri_of(self.split, "test_uri"), train_uri) if uri]
        if isinstance(self.training, Mapping) and self.training.get("run_id"):
            inputs.append(self.lineage_run(self.training["experiment_id"], self.training["run_id"]))
        return inputs + self.lineage_versions(result and result.get("champion_version"))


def _number(value: float | str | None) -> float | None:
    """A templated number: '' and None mean unset."""
    text = rendered(value)
    return None if text is None else float(text)
