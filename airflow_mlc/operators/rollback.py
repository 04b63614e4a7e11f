"""RollbackOperator: point ``champion`` back at the previous champion or a named version, on the record."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlc.links.mlflow import MLflowModelVersionLink, model_version_url
from airflow_mlc.operators.base import MLCBaseOperator
from airflow_mlc.run_context import rendered

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlc.lineage import LineageDataset


class RollbackOperator(MLCBaseOperator):
    """Move ``champion`` back: to ``target_version``, or to the version the current champion replaced.

    The target must exist and not be archived, and a reason is required. The move runs under the
    model's registry lock and is recorded in the ``<experiment>/champion-moves`` experiment with who
    (the user who triggered the run), why and when; ``champion_history`` reads the record back. The
    descriptions of both versions get a note of it (``Rolled back from champion on ...`` and
    ``Restored as champion on ...``); their ``mlc.*`` decision tags, such as ``mlc.promotion_reason``,
    keep the promotion decisions as they were. A retried task finds its record and moves nothing again.

    :param target_version: the version to make champion (templated); empty: the previous champion.
    :param reason: why (templated, required).
    :return: ``{"kind": "rollback", "model", "from_version", "to_version", "reason", "moved_by", "moved_at",
        "dag_id", "run_id", "evidence"}``.
    """

    template_fields: Sequence[str] = ("target_version", "reason")
    operator_extra_links = (MLflowModelVersionLink(),)
    ui_color = "#fadbd8"

    def __init__(self, *, reason: str, target_version: str | int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reason = reason
        self.target_version = target_version

    def execute_phase(self, context: Context) -> dict[str, Any]:
        from airflow_mlc.core.registry import rollback

        spec = self.model_spec
        target = self.mlflow_target
        client = target.activate()
        requested = rendered(self.target_version)
        move = rollback(
            client, spec.registered_model_name, requested, str(self.reason or ""), self.move_log(client, context)
        )
        self.log.info(
            "champion of %s: version %s -> %s by %s (%s)",
            move.model,
            move.from_version,
            move.to_version,
            move.moved_by,
            move.reason,
        )
        MLflowModelVersionLink.persist(context, model_version_url(target.ui_url, move.model, move.to_version))
        return move.as_dict()

    def lineage_outputs(self, result: Mapping[str, Any] | None) -> list[LineageDataset]:
        """The versions whose champion alias and description changed: the one left and the one restored."""
        return self.lineage_versions(result.get("from_version"), result.get("to_version")) if result else []
