"""Rollout of a challenger on live traffic: the canary split of batch inference, and the live judgement.

The challenger is the version the ``challenger`` alias points at. Its rollout state lives on its version
tags (``mlc.rollout_state``: ``active``, ``rolled_back`` or ``promoted``; ``mlc.rollout_step``: the
index into ``prediction.rollout.steps``; ``mlc.rollout_reason``; ``mlc.rollout_judged_by``), so every
DAG and the Models page read the same state from the registry.

- :func:`canary_rows`: which rows of a chunk the challenger serves: those whose stable hash of the
  ``prediction.rollout.key`` columns falls below the step's share. The same entity always gets the same
  model, re-running an interval gives the same split, and a row served by the challenger at one step is
  served by it at every later (larger) step.
- :func:`judge`: the monitoring DAG's judgement once labels arrive. In shadow mode both models are
  scored on every labelled row of the window and compared with the paired rule of promotion
  (``gates``); in canary mode each is scored on the rows it served and the two compared by independent
  bootstraps at the same confidence (:func:`judge_window`). The challenger
  is **promoted** when it is significantly better by ``gates.min_improvement``; **rolled back** (to 0 %)
  when it is significantly worse than the champion, or its live gate metric fell past
  ``monitoring.quality_tolerance`` from its own evaluation, significantly; otherwise, in canary mode,
  its share **advances** one step (it holds at the last), and in shadow mode nothing changes.
- :func:`apply_judgement`: carries the decision out under the model's registry lock, once per
  monitoring run (a retry finds its judgement on the tags), and records a promotion as a champion move.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from airflow_mlc.core import tracking
from airflow_mlc.core.compare import paired_comparison, unpaired_comparison
from airflow_mlc.core.metrics import Predictions, compute
from airflow_mlc.core.prepare import row_hashes
from airflow_mlc.errors import DataError
from airflow_mlc.spec import ModelLifecycleSpec

ACTIVE, ROLLED_BACK, PROMOTED = "active", "rolled_back", "promoted"


def rollout_state(tags: dict[str, str]) -> tuple[str, int]:
    """The challenger's state and step, from its version tags (a new challenger: active, step 0)."""
    try:
        step = int(tags.get(tracking.TAG_ROLLOUT_STEP, "0"))
    except ValueError:
        step = 0
    return tags.get(tracking.TAG_ROLLOUT_STATE, ACTIVE), step


def canary_share(spec: ModelLifecycleSpec, tags: dict[str, str]) -> float:
    """The share of rows the challenger serves now: its step's, or 0 when it is not active."""
    state, step = rollout_state(tags)
    steps = spec.prediction.rollout.steps
    return steps[min(step, len(steps) - 1)] if state == ACTIVE else 0.0


def canary_rows(chunk: pd.DataFrame, key: list[str], share: float, seed: int) -> np.ndarray:
    """Whether each row is served by the challenger: its key's stable hash, as a fraction, is below ``share``.

    Raises:
        DataError: a key column is missing from the chunk.
    """
    missing = [column for column in key if column not in chunk.columns]
    if missing:
        raise DataError(f"prediction.rollout.key: columns {missing} are missing (columns: {list(chunk.columns)})")
    if share <= 0:
        return np.zeros(len(chunk), dtype=bool)
    fractions = row_hashes(chunk, key, seed).astype(np.float64) / 2.0**64
    return np.asarray(fractions < share)


def challenger_exposure(client: Any, spec: ModelLifecycleSpec, served: str, shadow_uri: str) -> tuple[Any, Any, str]:
    """How batch inference exposes the challenger beside the ``served`` version, per ``prediction.rollout.mode``.

    Returns:
        The ``predict.ShadowModel`` (shadow mode, with a challenger other than ``served``) or None; the
        ``predict.CanaryRouting`` (canary mode, whatever the challenger: with none active, every row is
        the served version's) or None; and what was chosen, in words (empty with no rollout).
    """
    from airflow_mlc.core.predict import CanaryRouting, ShadowModel
    from airflow_mlc.core.registry import CHALLENGER, version_by_alias

    rollout, model = spec.prediction.rollout, spec.registered_model_name
    if rollout.mode == "off":
        return None, None, ""
    challenger = version_by_alias(client, model, CHALLENGER)
    other = challenger is not None and str(challenger.version) != served
    version = str(challenger.version) if challenger is not None else None
    if rollout.mode == "shadow":
        if not other:
            return None, None, f"Shadow mode: no challenger other than the served version {served} to score beside it"
        loaded = tracking.load_model(f"models:/{model}/{version}", flavor="pyfunc")
        words = f"Shadow mode: challenger version {version} scores beside version {served}, never served"
        return ShadowModel(loaded, str(version), shadow_uri), None, words
    share = canary_share(spec, dict(challenger.tags or {})) if challenger is not None and other else 0.0
    if share == 0:
        words = f"Canary mode: version {served} serves every row (no active challenger)"
        return None, CanaryRouting(None, None, rollout.key, 0.0, spec.split.seed), words
    loaded = tracking.load_model(f"models:/{model}/{version}", flavor="pyfunc")
    words = f"Canary mode: challenger version {version} serves {share:.0%} of the rows"
    return None, CanaryRouting(loaded, version, rollout.key, share, spec.split.seed), words


@dataclass(frozen=True)
class Judgement:
    """What the live comparison decided: ``action`` (promote, roll_back, advance, hold) and why."""

    action: str
    reason: str
    challenger: str | None = None
    champion: str | None = None
    step: int | None = None
    next_step: int | None = None
    share: float | None = None
    comparison: dict[str, Any] | None = None
    #: Each model's live gate metric and the rows it was computed on (``challenger``, ``challenger_rows`` ...).
    live: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge(
    spec: ModelLifecycleSpec,
    challenger: Predictions,
    champion: Predictions,
    challenger_baseline: float | None,
    step: int,
    versions: tuple[str, str],
    paired: bool = True,
) -> Judgement:
    """The decision on a challenger from both models' live predictions (see the module).

    Args:
        spec: the model's spec (``gates``, ``monitoring.quality_tolerance``, ``prediction.rollout``).
        challenger: the challenger's predictions of labelled rows.
        champion: the champion's: of the same rows when ``paired``, else of the rows it served.
        challenger_baseline: the challenger's gate metric at its evaluation, or None.
        step: the challenger's rollout step now.
        versions: the challenger's and the champion's versions.
        paired: both are predictions of the same rows (compared by a paired bootstrap); else each
            model's of the rows it served (a canary's A/B comparison, by independent bootstraps).
    """
    gates, metric = spec.gates, spec.gates.metric
    mode, steps = spec.prediction.rollout.mode, spec.prediction.rollout.steps
    base = Judgement("hold", "", challenger=versions[0], champion=versions[1], step=step)
    sides = (("challenger", challenger),) if paired else (("challenger", challenger), ("champion", champion))
    verb = "has" if paired else "served"
    short = [f"the {role} {verb} {len(rows)} labelled rows" for role, rows in sides if len(rows) < gates.min_rows]
    if short:
        return replace(base, reason=f"{' and '.join(short)}, fewer than gates.min_rows ({gates.min_rows}): not judged")
    compare = paired_comparison if paired else unpaired_comparison
    comparison = compare(metric, challenger, champion, gates.confidence, gates.bootstrap_rounds, spec.split.seed)
    if comparison is None:
        return replace(base, reason=f"{metric} cannot be compared on the {len(challenger)} labelled rows")
    words = comparison.describe()
    live = {
        "challenger": comparison.challenger,
        "champion": comparison.champion,
        "challenger_rows": len(challenger),
        "champion_rows": len(champion),
    }
    found = replace(base, comparison=comparison.as_dict(), live=live)
    if comparison.significant and comparison.relative >= gates.min_improvement:
        return replace(found, action="promote", reason=f"won on live data: {words}")
    if comparison.high < 0:
        return replace(found, action="roll_back", reason=f"significantly worse than the champion on live data: {words}")
    loss = _live_loss(spec, challenger, challenger_baseline)
    if loss is not None:
        return replace(found, action="roll_back", reason=loss)
    if mode == "canary" and step < len(steps) - 1:
        nxt = step + 1
        reason = f"holds on live data ({words}): the share served advances from {steps[step]:.0%} to {steps[nxt]:.0%}"
        return replace(found, action="advance", reason=reason, next_step=nxt, share=steps[nxt])
    return replace(found, reason=f"neither better nor worse on live data: {words}")


def _live_loss(spec: ModelLifecycleSpec, challenger: Predictions, baseline: float | None) -> str | None:
    """Why the challenger's own live quality fell past ``monitoring.quality_tolerance``, significantly; else None."""
    from airflow_mlc.core.compare import metric_interval
    from airflow_mlc.core.drift import relative_loss, wholly_worse

    metric, tolerance = spec.gates.metric, spec.monitoring.quality_tolerance
    value = compute(metric, challenger)
    if baseline is None or tolerance is None or value is None:
        return None
    loss = relative_loss(value, baseline, metric)
    if loss <= tolerance:
        return None
    interval = metric_interval(metric, challenger, spec.gates.confidence, spec.gates.bootstrap_rounds, spec.split.seed)
    if interval is None:
        return None
    if wholly_worse(interval, baseline, metric):
        return (
            f"its live {metric} {value:.4g} is {loss:.1%} worse than at its evaluation ({baseline:.4g}; "
            f"monitoring.quality_tolerance {tolerance:.0%}), its interval [{interval[0]:.4g}, {interval[1]:.4g}] "
            "wholly on the worse side"
        )
    return None


def apply_judgement(client: Any, spec: ModelLifecycleSpec, judgement: Judgement, judged_by: str, log: Any) -> Judgement:
    """Carry ``judgement`` out under the registry lock, once per ``judged_by`` (the monitoring DAG run).

    A promotion moves ``champion`` to the challenger (only if ``champion`` is still the version it was
    compared with, and the challenger is still ``challenger``) and is recorded in ``log`` as a champion
    move; a roll-back and an advance change the challenger's rollout tags. Returns what was done: a
    ``hold`` when the registry moved meanwhile.
    """
    from airflow_mlc.core.registry import CHALLENGER, CHAMPION, registry_lock, version_by_alias

    model = spec.registered_model_name
    if judgement.action == "hold" or judgement.challenger is None:
        return judgement
    with registry_lock(client, model, holder=judged_by):
        challenger = version_by_alias(client, model, CHALLENGER)
        champion = version_by_alias(client, model, CHAMPION)
        if (challenger is not None and challenger.tags.get(tracking.TAG_ROLLOUT_JUDGED_BY) == judged_by) or (
            champion is not None and champion.tags.get(tracking.TAG_ROLLOUT_JUDGED_BY) == judged_by
        ):
            return judgement  # a retry: already carried out
        if (
            challenger is None
            or str(challenger.version) != judgement.challenger
            or champion is None
            or str(champion.version) != judgement.champion
        ):
            moved = "the registry's aliases moved since the judgement: not acted on"
            return Judgement("hold", moved, judgement.challenger, judgement.champion, judgement.step)
        version = judgement.challenger
        tags = {tracking.TAG_ROLLOUT_REASON: judgement.reason[:5000], tracking.TAG_ROLLOUT_JUDGED_BY: judged_by}
        if judgement.action == "promote":
            tags[tracking.TAG_ROLLOUT_STATE] = PROMOTED
        elif judgement.action == "roll_back":
            tags[tracking.TAG_ROLLOUT_STATE] = ROLLED_BACK
        else:
            tags[tracking.TAG_ROLLOUT_STEP] = str(judgement.next_step)
        for key, value in tags.items():
            client.set_model_version_tag(model, version, key, value)
        if judgement.action == "promote":
            client.set_model_version_tag(model, version, tracking.TAG_PREVIOUS_CHAMPION, judgement.champion or "")
            client.set_registered_model_alias(model, CHAMPION, version)
            client.delete_registered_model_alias(model, CHALLENGER)
            # before the judgement's record: the move log finds its own record by this task's tags alone
            log.record(client, model, "promotion", judgement.champion, version, f"rollout: {judgement.reason}")
        record_judgement(client, model, judgement, log)
    return judgement


def record_judgement(client: Any, model: str, judgement: Judgement, log: Any) -> None:
    """Record an acted-on judgement (who, why, when) as a run of the champion-moves experiment, kind ``rollout``.

    Kept apart from the champion moves (their kind is ``champion-move``); the decision history reads both.
    """
    from datetime import datetime, timezone

    key = {**log.key, tracking.TAG_KIND: tracking.KIND_ROLLOUT, tracking.TAG_MODEL: model}
    tags = {
        tracking.TAG_ROLLOUT_ACTION: judgement.action,
        tracking.TAG_FROM_VERSION: judgement.champion or "",
        tracking.TAG_TO_VERSION: judgement.challenger or "",
        tracking.TAG_REASON: judgement.reason[:5000],
        tracking.TAG_MOVED_BY: log.moved_by,
        tracking.TAG_MOVED_AT: datetime.now(timezone.utc).isoformat(),
        tracking.TAG_ROLLOUT_STEP: "" if judgement.next_step is None else str(judgement.next_step),
    }
    name = f"rollout v{judgement.challenger}: {judgement.action.replace('_', ' ')}"
    tracking.get_or_create_run(client, log.experiment_id, key, tags, run_name=name)


def judge_window(client: Any, spec: ModelLifecycleSpec, window: Any, judged_by: str, log: Any) -> Judgement:
    """Judge the challenger on the window's labelled rows and carry the decision out (the monitoring task's work).

    ``window`` is the window read by columns (``storage.ParquetColumns``), ``prediction.chunk_rows`` rows at
    a time. The rows judged are its labelled rows, and with a time column only those newer than both
    versions' data (``mlc.window_end``): neither model trained on them. In shadow mode both models are
    scored on all of them and compared pairwise. In canary mode each model is scored on the rows it
    served (the split of :func:`canary_rows` at the challenger's share now) and the two are compared by
    independent bootstraps, an A/B test; once the champion serves fewer than ``gates.min_rows`` of them
    (a last step of 100 %), it is scored on the challenger's rows instead, pairwise. Nothing is judged
    without a rollout mode, a challenger other than the champion, an active rollout, or the target column.
    """
    from airflow_mlc.core.drift import quality_baseline
    from airflow_mlc.core.registry import CHALLENGER, CHAMPION, version_by_alias

    model, target, rollout = spec.registered_model_name, spec.target, spec.prediction.rollout
    if rollout.mode == "off":
        return Judgement("hold", "prediction.rollout.mode is off: no challenger is rolled out")
    challenger = version_by_alias(client, model, CHALLENGER)
    champion = version_by_alias(client, model, CHAMPION)
    if challenger is None or champion is None or str(challenger.version) == str(champion.version):
        return Judgement("hold", "no challenger besides the champion to judge")
    tags = dict(challenger.tags or {})
    state, step = rollout_state(tags)
    versions = (str(challenger.version), str(champion.version))
    if state != ACTIVE:
        return Judgement("hold", f"the challenger's rollout is {state.replace('_', ' ')}", *versions, step=step)
    if target not in window.names:
        return Judgement("hold", f"the window has no target column {target!r}: nothing to judge", *versions, step=step)

    live = _LiveRows(spec, window, [challenger, champion])
    baseline = quality_baseline(client.get_run(challenger.run_id).data.metrics, spec.gates.metric)
    if rollout.mode == "shadow":
        judgement = judge(spec, live.scored(challenger), live.scored(champion), baseline, step, versions)
        return apply_judgement(client, spec, judgement, judged_by, log)
    share = canary_share(spec, tags)
    served = live.scored(challenger, share, canary=True)
    kept = live.scored(champion, share, canary=False)
    if len(kept) < spec.gates.min_rows:  # the champion hardly serves any more: both on the challenger's rows
        judgement = judge(spec, served, live.scored(champion, share, canary=True), baseline, step, versions)
    else:
        judgement = judge(spec, served, kept, baseline, step, versions, paired=False)
    return apply_judgement(client, spec, judgement, judged_by, log)


class _LiveRows:
    """A window's live rows (labelled, newer than the versions' data), scored by a version chunk by chunk."""

    def __init__(self, spec: ModelLifecycleSpec, window: Any, versions: list[Any]) -> None:
        self.spec, self.window = spec, window
        self.time_column = spec.source.time_column if spec.source.time_column in window.names else None
        ends = [v.tags.get(tracking.TAG_WINDOW_END) for v in versions]
        self.newer_than = max(ends) if self.time_column and all(ends) else None  # rows neither model trained on
        self.positive = (versions[-1].tags or {}).get(tracking.TAG_POSITIVE_CLASS) or spec.positive_class
        self.models: dict[str, Any] = {}  # each version loaded once, however often it is scored

    def _rows(self, batch: pd.DataFrame, share: float | None, canary: bool) -> pd.DataFrame:
        from airflow_mlc.core.ingest import to_times

        spec = self.spec
        rows = batch[batch[spec.target].notna()]
        if self.newer_than is not None and self.time_column is not None:
            rows = rows[to_times(rows[self.time_column], spec.source) >= pd.Timestamp(self.newer_than)]
        if share is None:
            return rows
        served = canary_rows(rows, spec.prediction.rollout.key, share, spec.split.seed)
        return rows[served if canary else ~served]

    def scored(self, version: Any, share: float | None = None, canary: bool = True) -> Predictions:
        """``version``'s predictions of the live rows; with ``share``, only the canary's (or the others')."""
        from airflow_mlc.core.metrics import model_features, predict_chunks

        spec = self.spec
        key = str(version.version)
        if key not in self.models:
            self.models[key] = tracking.load_model(f"models:/{spec.registered_model_name}/{key}")
        fitted = self.models[key]
        columns = [*model_features(fitted, spec.features.columns), spec.target]
        columns += [self.time_column] if self.time_column else []
        columns += spec.prediction.rollout.key if share is not None else []
        batches = (
            self._rows(batch, share, canary)
            for batch in self.window.batches(list(dict.fromkeys(columns)), spec.prediction.chunk_rows)
        )
        return predict_chunks(fitted, batches, spec.features.columns, spec.target, spec.task, self.positive)
