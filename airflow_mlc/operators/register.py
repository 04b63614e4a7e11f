"""RegisterModelOperator: register the candidate as ``challenger``; promote it to ``champion`` through the gates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlc.links.mlflow import MLflowModelVersionLink, model_version_url
from airflow_mlc.operators.base import MLCBaseOperator, UpstreamResult, result_of
from airflow_mlc.run_context import flag

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlc.lineage import LineageDataset


class RegisterModelOperator(MLCBaseOperator):
    """Register the trained model, point ``challenger`` at it, and move ``champion`` when allowed.

    ``champion`` moves only when the evaluation passed (or ``force_promote`` is true), the
    candidate's data does not end before the champion's (a backfill), and the champion is still the
    one the candidate was evaluated against. The decision is taken under the model's registry lock,
    so two runs finishing together cannot both move it; each move is recorded in the
    ``<experiment>/champion-moves`` experiment (who, why, when). The version carries the decision, its
    reason and the previous champion as tags (``mlc.*``), with the training run's tags and the
    evaluation behind it (``mlc.score``, ``mlc.champion_score``, ``mlc.scored_on``, ``mlc.scored_rows``,
    ``mlc.improvement`` and its interval ``mlc.improvement_ci_low`` / ``_high`` at ``mlc.confidence``);
    the champion-move record carries the same evidence. The version's description says it in words:
    what was trained on which window, the decision, and why. Each registered version gets a model card
    (``model_card/model_card.md`` and ``.html`` in its run, tag ``mlc.model_card``). With
    ``registry_dry_run`` nothing in the registry changes.

    :param training: the train task's result (``run_id``, ``model_uri``).
    :param evaluation: the evaluate task's result (``passed``, ``reasons``).
    :param force_promote: promote even when the gates failed (templated).
    :param registry_dry_run: report the decision without touching the registry (templated).
    :return: ``{"model", "version", "promoted", "champion", "previous_champion", "reason", "dry_run"}``.
    """

    template_fields: Sequence[str] = ("training", "evaluation", "force_promote", "registry_dry_run")
    operator_extra_links = (MLflowModelVersionLink(),)

    def __init__(
        self,
        *,
        training: UpstreamResult,
        evaluation: UpstreamResult,
        force_promote: bool | str = False,
        registry_dry_run: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.training = training
        self.evaluation = evaluation
        self.force_promote = force_promote
        self.registry_dry_run = registry_dry_run

    def execute_phase(self, context: Context) -> dict[str, Any]:
        from airflow_mlc.core.evaluate import version_tags
        from airflow_mlc.core.model_card import log_model_card
        from airflow_mlc.core.registry import register_and_promote

        spec = self.model_spec
        training, evaluation = result_of(self.training, "training"), result_of(self.evaluation, "evaluation")
        target = self.mlflow_target
        client = target.activate()
        run_id = training["run_id"]
        decision = register_and_promote(
            client,
            spec.registered_model_name,
            training["model_uri"],
            run_id,
            bool(evaluation["passed"]),
            list(evaluation["reasons"]),
            version_tags(client.get_run(run_id).data.tags, evaluation),
            evaluated_against=evaluation.get("champion_version"),
            force=flag(self.force_promote),
            dry_run=flag(self.registry_dry_run),
            log=self.move_log(client, context),
        )
        self.log.info(
            "%s version %s: promoted=%s (%s)", decision.model, decision.version, decision.promoted, decision.reason
        )
        if decision.version is not None and not decision.dry_run:
            card = log_model_card(client, spec, decision.version, evaluation, decision.as_dict(), run_id)
            self.log.info("Model card: %s", card)
        url = model_version_url(target.ui_url, decision.model, decision.version)
        MLflowModelVersionLink.persist(context, url)
        return decision.as_dict()

    def lineage_inputs(self, result: Mapping[str, Any] | None) -> list[LineageDataset]:
        """The training run registered."""
        if isinstance(self.training, Mapping) and self.training.get("run_id"):
            return [self.lineage_run(self.training["experiment_id"], self.training["run_id"])]
        return []

    def lineage_outputs(self, result: Mapping[str, Any] | None) -> list[LineageDataset]:
        """The model version registered (none in a dry run)."""
        if not result or result.get("dry_run"):
            return []
        return self.lineage_versions(result.get("version"))
