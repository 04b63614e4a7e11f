"""RolloutJudgeOperator: judge the challenger on the monitored window's labelled rows, and act on it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlc.operators.base import MLCBaseOperator, Upstream, uri_of

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlc.lineage import LineageDataset


class RolloutJudgeOperator(MLCBaseOperator):
    """Compare the challenger with the champion on live labelled rows and promote, roll back or advance it.

    With ``prediction.rollout.mode`` shadow or canary, and a ``challenger`` other than the ``champion``
    whose rollout is active: in shadow mode both are scored on every labelled row of the monitored window
    and compared by the paired rule of promotion; in canary mode each on the rows it served, as an A/B
    test (each side's live metric and rows in ``live``). A significant win (``gates.min_improvement``)
    promotes the challenger (a champion move recorded as ``rollout: won on live data ...``); a significant
    loss, or its own live quality falling past ``monitoring.quality_tolerance``, rolls it back to 0 %
    (``mlc.rollout_state: rolled_back`` and the reason on its version); otherwise a canary's share
    advances one step of ``prediction.rollout.steps``. A retried task acts once. See docs/rollout.md.

    :param current: the ingest task's result for the monitored window, or a snapshot URI (templated).
    :return: ``{"action", "reason", "challenger", "champion", "step", "next_step", "share", "comparison",
        "live"}``; ``action`` is ``promote``, ``roll_back``, ``advance`` or ``hold``.
    """

    template_fields: Sequence[str] = ("current",)

    def __init__(self, *, current: Upstream, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.current = current

    def execute_phase(self, context: Context) -> dict[str, Any]:
        from airflow_mlc.core.rollout import judge_window
        from airflow_mlc.core.storage import ParquetColumns

        client = self.mlflow_target.activate()
        log = self.move_log(client, context)
        with ParquetColumns(uri_of(self.current), self.storage.options) as window:
            judgement = judge_window(client, self.model_spec, window, f"{self.dag_id}/{context['run_id']}", log)
        self.log.info("Rollout of version %s: %s (%s)", judgement.challenger, judgement.action, judgement.reason)
        return judgement.as_dict()

    def lineage_inputs(self, result: Mapping[str, Any] | None) -> list[LineageDataset]:
        """The monitored window's snapshot, the challenger and the champion judged on it."""
        from airflow_mlc.lineage import file_dataset

        judged = result or {}
        return [
            file_dataset(uri_of(self.current)),
            *self.lineage_versions(judged.get("challenger"), judged.get("champion")),
        ]

    def lineage_outputs(self, result: Mapping[str, Any] | None) -> list[LineageDataset]:
        """The challenger, when the judgement moved it (promoted, rolled back or advanced a step)."""
        if not result or result.get("action") in (None, "hold"):
            return []
        return self.lineage_versions(result.get("challenger"))
