"""A model's life cycle at a glance: versions, champion moves, monitoring, retraining and predictions.

What the Models page shows, assembled from two records kept as the life cycle runs:

- the MLflow registry: every version with its ``mlc.*`` tags (window, score, interval, decision,
  what triggered it) and the champion-move records (who moved ``champion``, why, when);
- the Airflow runs of the model's DAGs, given here as :class:`RunRecord` values: their type, state,
  user, and the small documented XCom results of their tasks (the drift task's per-column scores,
  the quality task's live metric, the retraining decision, the batch predictions' statistics).

Nothing here reads a report or a dataset: a page for a model with hundreds of versions and a
thousand monitoring runs is a few queries and a pass over small dicts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_mlc.core import tracking
from airflow_mlc.core.registry import CHALLENGER, CHAMPION, Move
from airflow_mlc.spec import ModelLifecycleSpec

#: How a training run was started, from the Airflow run type.
TRIGGER_OF_RUN_TYPE = {
    "scheduled": "schedule",
    "manual": "manual",
    "backfill": "backfill",
    "asset_triggered": "drift",
    "asset_materialization": "drift",
}


@dataclass(frozen=True)
class RunRecord:
    """One Airflow DAG run of a model's DAG, with the XCom results the page reads.

    ``xcoms`` maps ``<task_id>`` (the return value) or ``<task_id>.<key>`` to the value.
    ``source_run_id`` is, for a run started by the retraining asset, the monitoring run that emitted it.
    """

    dag_id: str
    run_id: str
    run_type: str
    state: str
    logical_date: str | None = None
    start_date: str | None = None
    end_date: str | None = None
    user: str | None = None
    conf: Mapping[str, Any] = field(default_factory=dict)
    xcoms: Mapping[str, Any] = field(default_factory=dict)
    source_run_id: str | None = None

    def result(self, task_id: str, key: str | None = None) -> Any:
        """The XCom value of ``task_id`` (its return value, or ``key``), or None."""
        return self.xcoms.get(f"{task_id}.{key}" if key else task_id)


@dataclass(frozen=True)
class VersionRow:
    """One model version: what it was trained on, how it scored, what was decided and what started it."""

    version: str
    run_id: str
    created_at: str
    aliases: list[str]
    window_start: str
    window_end: str
    metric: str
    score: float | None
    champion_score: float | None
    compared_with: str | None
    improvement: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float | None
    scored_rows: str
    decision: str
    reason: str
    trigger: str
    trigger_detail: str
    dag_id: str
    dag_run_id: str
    description: str
    top_features: str = ""
    fairness: str = ""
    slices: str = ""
    model_card: str = ""
    rollout: str = ""


@dataclass(frozen=True)
class ColumnSeries:
    """One monitored column's drift score per window, with its method and threshold."""

    column: str
    method: str
    threshold: float | None
    points: list[dict[str, Any]]


@dataclass(frozen=True)
class MonitoringWindow:
    """One monitoring run: its window, the champion it checked, and the verdicts."""

    run_id: str
    state: str
    window_start: str
    window_end: str
    champion_version: str | None
    drift_detected: bool | None
    drifted_share: float | None
    drift_share_threshold: float | None
    quality_metric: str | None
    quality_value: float | None
    quality_interval: list[float] | None
    quality_baseline: float | None
    quality_tolerance: float | None
    labelled_rows: int
    quality_degraded: bool | None
    retrain_requested: bool | None
    retrain_reason: str


@dataclass(frozen=True)
class RetrainRequest:
    """A monitoring run's retraining signal and what became of it."""

    monitoring_run_id: str
    window_end: str
    reason: str
    outcome: str
    training_run_id: str | None
    version: str | None
    detail: str


@dataclass(frozen=True)
class PredictionBatch:
    """One batch-inference run: its interval, rows, the version that scored and the predictions' spread."""

    run_id: str
    state: str
    window_start: str
    window_end: str
    rows: int | None
    model_version: str | None
    uri: str | None
    distribution: dict[str, Any]
    shadow: dict[str, Any] | None = None
    canary: dict[str, Any] | None = None


@dataclass(frozen=True)
class ModelSummary:
    """A model's row in the model list."""

    name: str
    description: str
    task: str
    champion: str | None
    challenger: str | None
    metric: str
    champion_score: float | None
    last_monitoring: dict[str, Any] | None
    last_training: dict[str, Any] | None
    paused: dict[str, bool | None]


@dataclass(frozen=True)
class ModelPage:
    """Everything the model page shows."""

    summary: ModelSummary
    versions: list[VersionRow]
    moves: list[dict[str, Any]]
    monitoring: list[MonitoringWindow]
    drift: list[ColumnSeries]
    requests: list[RetrainRequest]
    predictions: list[PredictionBatch]
    rollbacks: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        """The page as JSON-ready data (nested dicts and lists are shared, not copied)."""
        return plain(self)


def plain(value: Any) -> Any:
    """Dataclasses (and lists of them) as dicts; much faster than ``asdict``, which deep-copies every dict."""
    if hasattr(value, "__dataclass_fields__"):
        return {name: plain(getattr(value, name)) for name in value.__dataclass_fields__}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def _number(value: Any) -> float | None:
    """A finite float from a tag or XCom value, else None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def decision_of(tags: Mapping[str, str]) -> str:
    """``promoted``, ``challenger`` (passed the gates, not promoted), ``rejected`` or ``pending`` (no decision yet)."""
    if tags.get(tracking.TAG_PROMOTED) == "true":
        return "promoted"
    passed = tags.get(tracking.TAG_GATE_PASSED)
    if passed == "true":
        return "challenger"
    if passed == "false":
        return "rejected"
    return "pending"


def decision_of_run(run: RunRecord) -> tuple[str | None, str, str]:
    """A training run's (version, decision, reason) from its evaluate and register results.

    The same decision as :func:`decision_of` reads from a version's tags, for a version the page did not load.
    """
    registered = run.result("register") or {}
    evaluated = run.result("evaluate") or {}
    if not registered:
        return None, "pending" if run.state in ("queued", "running") else run.state, ""
    if registered.get("promoted"):
        decision = "promoted"
    else:
        decision = "challenger" if evaluated.get("passed") else "rejected"
    return str(registered.get("version")), decision, str(registered.get("reason") or "")


def trigger_of(tags: Mapping[str, str], run: RunRecord | None) -> tuple[str, str]:
    """What started the training of a version: (kind, detail). A drift event names its monitoring run."""
    request = tags.get(tracking.TAG_TRIGGERED_BY)
    if request:
        try:
            event = json.loads(request)
        except ValueError:
            event = {}
        window = (event.get("window") or {}).get("end", "")
        detail = f"{event.get('reason', 'retraining requested')} (monitoring run {event.get('source_run_id', '?')}"
        return "drift", f"{detail}, window ending {window})" if window else f"{detail})"
    if run is None:
        return "manual", ""
    kind = TRIGGER_OF_RUN_TYPE.get(run.run_type, run.run_type)
    return kind, f"by {run.user}" if run.user and kind == "manual" else ""


def version_rows(
    versions: Iterable[Any], aliases: Mapping[str, str], runs_by_id: Mapping[str, RunRecord]
) -> list[VersionRow]:
    """The versions table, newest first. ``versions`` are MLflow ``ModelVersion`` objects."""
    by_version: dict[str, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(str(version), []).append(alias)
    rows = []
    for version in versions:
        tags = dict(version.tags or {})
        run = runs_by_id.get(tags.get(tracking.TAG_RUN_ID, ""))
        trigger, detail = trigger_of(tags, run)
        rows.append(
            VersionRow(
                version=str(version.version),
                run_id=str(version.run_id or ""),
                created_at=_iso_millis(version.creation_timestamp),
                aliases=sorted(by_version.get(str(version.version), [])),
                window_start=tags.get(tracking.TAG_WINDOW_START, ""),
                window_end=tags.get(tracking.TAG_WINDOW_END, ""),
                metric=tags.get(tracking.TAG_SCORE_METRIC, ""),
                score=_number(tags.get(tracking.TAG_SCORE)),
                champion_score=_number(tags.get(tracking.TAG_CHAMPION_SCORE)),
                compared_with=tags.get(tracking.TAG_COMPARED_WITH) or None,
                improvement=_number(tags.get(tracking.TAG_IMPROVEMENT)),
                ci_low=_number(tags.get(tracking.TAG_CI_LOW)),
                ci_high=_number(tags.get(tracking.TAG_CI_HIGH)),
                confidence=_number(tags.get(tracking.TAG_CONFIDENCE)),
                scored_rows=tags.get(tracking.TAG_SCORED_ROWS, ""),
                decision=decision_of(tags),
                reason=tags.get(tracking.TAG_DECISION, ""),
                trigger=trigger,
                trigger_detail=detail,
                dag_id=tags.get(tracking.TAG_DAG_ID, ""),
                dag_run_id=tags.get(tracking.TAG_RUN_ID, ""),
                description=str(getattr(version, "description", "") or ""),
                top_features=tags.get(tracking.TAG_TOP_FEATURES, ""),
                fairness=tags.get(tracking.TAG_FAIRNESS, ""),
                slices=tags.get(tracking.TAG_SLICES, ""),
                model_card=tags.get(tracking.TAG_MODEL_CARD, ""),
                rollout=rollout_words(tags),
            )
        )
    return sorted(rows, key=lambda row: int(row.version) if row.version.isdigit() else 0, reverse=True)


def rollout_words(tags: Mapping[str, str]) -> str:
    """A version's rollout in words, from its tags: empty when it was never judged on live data."""
    state = tags.get(tracking.TAG_ROLLOUT_STATE)
    if state is None and tracking.TAG_ROLLOUT_STEP not in tags:
        return ""
    if state in (None, "active"):
        return f"rollout active, step {int(tags.get(tracking.TAG_ROLLOUT_STEP, '0')) + 1}"
    return f"rollout {state.replace('_', ' ')}: {tags.get(tracking.TAG_ROLLOUT_REASON, '')}"


def _iso_millis(millis: Any) -> str:
    from datetime import datetime, timezone

    number = _number(millis)
    if number is None:
        return ""
    return datetime.fromtimestamp(number / 1000, tz=timezone.utc).isoformat(timespec="seconds")


def monitoring_windows(runs: Iterable[RunRecord]) -> list[MonitoringWindow]:
    """The monitoring runs that checked a window, oldest window first."""
    windows = []
    for run in runs:
        drift = run.result("drift") or {}
        quality = run.result("quality") or {}
        decision = run.result("request_retraining", "decision")
        requested_extra = run.result("request_retraining")
        window = drift.get("window") or {}
        if not drift and not quality:
            continue
        interval = quality.get("interval")
        windows.append(
            MonitoringWindow(
                run_id=run.run_id,
                state=run.state,
                window_start=str(window.get("start") or ""),
                window_end=str(window.get("end") or run.logical_date or ""),
                champion_version=drift.get("champion_version") or quality.get("champion_version"),
                drift_detected=drift.get("drift_detected"),
                drifted_share=_number(drift.get("drifted_share")),
                drift_share_threshold=_number(drift.get("drift_share_threshold")),
                quality_metric=quality.get("metric"),
                quality_value=_number((quality.get("live_metrics") or {}).get(quality.get("metric"))),
                quality_interval=[float(x) for x in interval] if interval else None,
                quality_baseline=_number(quality.get("baseline")),
                quality_tolerance=_number(quality.get("tolerance")),
                labelled_rows=int(quality.get("labelled_rows") or 0),
                quality_degraded=quality.get("degraded"),
                retrain_requested=(decision or {}).get("requested", True if requested_extra else None),
                retrain_reason=str((decision or {}).get("reason") or (requested_extra or {}).get("reason") or ""),
            )
        )
    return sorted(windows, key=lambda w: (w.window_end, w.run_id))


def drift_series(runs: Iterable[RunRecord], windows: Sequence[MonitoringWindow]) -> list[ColumnSeries]:
    """Each monitored column's drift score per window, in the order of ``windows``."""
    by_run = {run.run_id: run for run in runs}
    series: dict[str, ColumnSeries] = {}
    for window in windows:
        drift = by_run[window.run_id].result("drift") or {}
        for column in drift.get("columns") or []:
            name = str(column.get("column"))
            if name not in series:
                series[name] = ColumnSeries(name, str(column.get("method", "")), _number(column.get("threshold")), [])
            series[name].points.append(
                {
                    "window_end": window.window_end,
                    "score": _number(column.get("score")),
                    "drifted": bool(column.get("drifted")),
                    "threshold": _number(column.get("threshold")),
                    "method": column.get("method"),
                }
            )
    return list(series.values())


def retrain_requests(windows: Sequence[MonitoringWindow], training_runs: Iterable[RunRecord]) -> list[RetrainRequest]:
    """The retraining signals and what became of each, newest first.

    A signal suppressed by the cooldown (or by an earlier request for the same window) is
    ``suppressed``; a request is ``pending`` until its training run ends, then ``failed``,
    ``promoted``, ``challenger``, ``rejected`` (the version's decision) or ``trained``.
    """
    started_by = {run.source_run_id: run for run in training_runs if run.source_run_id}
    requests = []
    for window in windows:
        if window.retrain_requested is None:
            continue
        if not window.retrain_requested:
            if not (window.drift_detected or window.quality_degraded):  # no signal: nothing was held back
                continue
            requests.append(
                RetrainRequest(window.run_id, window.window_end, window.retrain_reason, "suppressed", None, None, "")
            )
            continue
        training = started_by.get(window.run_id)
        version = None
        if training is None or training.state in ("queued", "running"):
            outcome, detail = "pending", "training not finished" if training else "no training run yet"
        else:
            version, outcome, detail = decision_of_run(training)
            if version is None:
                outcome, detail = ("failed", "the training run failed") if outcome == "failed" else ("trained", "")
        requests.append(
            RetrainRequest(
                window.run_id,
                window.window_end,
                window.retrain_reason,
                outcome,
                training.run_id if training else None,
                version,
                detail,
            )
        )
    return list(reversed(requests))


def prediction_batches(runs: Iterable[RunRecord]) -> list[PredictionBatch]:
    """The batch-inference runs, oldest interval first."""
    batches = []
    for run in runs:
        result = run.result("predict") or {}
        window = result.get("window") or {}
        stats = result.get("stats") or {}
        distribution = {
            k: v for k, v in stats.items() if k not in ("rows", "seconds", "rows_per_second", "shadow", "canary")
        }
        batches.append(
            PredictionBatch(
                run_id=run.run_id,
                state=run.state,
                window_start=str(window.get("start") or run.conf.get("window_start") or ""),
                window_end=str(window.get("end") or run.conf.get("window_end") or ""),
                rows=result.get("rows"),
                model_version=result.get("model_version"),
                uri=result.get("uri"),
                distribution=distribution,
                shadow=result.get("shadow"),
                canary=result.get("canary"),
            )
        )
    return sorted(batches, key=lambda b: (b.window_end, b.run_id))


def summary(
    spec: ModelLifecycleSpec,
    aliases: Mapping[str, str],
    versions: Sequence[VersionRow],
    windows: Sequence[MonitoringWindow],
    training_runs: Sequence[RunRecord],
    paused: Mapping[str, bool | None],
) -> ModelSummary:
    """The model's row in the model list."""
    champion = aliases.get(CHAMPION)
    champion_row = next((row for row in versions if row.version == str(champion)), None)
    last_window = windows[-1] if windows else None
    last_training = max(training_runs, key=lambda run: run.start_date or "", default=None)
    training = None
    if last_training is not None:
        version, outcome, _ = decision_of_run(last_training)
        training = {
            "run_id": last_training.run_id,
            "state": last_training.state,
            "started": last_training.start_date,
            "trigger": TRIGGER_OF_RUN_TYPE.get(last_training.run_type, last_training.run_type),
            "version": version,
            "outcome": outcome,
        }
    monitoring = None
    if last_window is not None:
        monitoring = {
            "run_id": last_window.run_id,
            "window_end": last_window.window_end,
            "drift_detected": last_window.drift_detected,
            "drifted_share": last_window.drifted_share,
            "quality_degraded": last_window.quality_degraded,
            "retrain_requested": last_window.retrain_requested,
        }
    return ModelSummary(
        name=spec.name,
        description=spec.description or "",
        task=spec.task,
        champion=str(champion) if champion is not None else None,
        challenger=str(aliases[CHALLENGER]) if CHALLENGER in aliases else None,
        metric=spec.gates.metric,
        champion_score=champion_row.score if champion_row else None,
        last_monitoring=monitoring,
        last_training=training,
        paused=dict(paused),
    )


def model_page(
    spec: ModelLifecycleSpec,
    versions: Iterable[Any],
    aliases: Mapping[str, str],
    moves: Iterable[Move],
    runs: Iterable[RunRecord],
    paused: Mapping[str, bool | None],
) -> ModelPage:
    """Assemble the model page from the registry (``versions``, ``aliases``, ``moves``) and the Airflow runs."""
    ids = spec.dag_ids
    by_dag: dict[str, list[RunRecord]] = {dag_id: [] for dag_id in ids.values()}
    for run in runs:
        by_dag.setdefault(run.dag_id, []).append(run)
    training_runs = by_dag[ids["train"]]
    rows = version_rows(versions, aliases, {run.run_id: run for run in training_runs})
    windows = monitoring_windows(by_dag[ids["monitor"]])
    rollbacks = [
        {
            "run_id": run.run_id,
            "state": run.state,
            "user": run.user,
            "version": run.conf.get("target_version"),
            "reason": run.conf.get("reason"),
            "started": run.start_date,
        }
        for run in sorted(by_dag[ids["rollback"]], key=lambda run: run.start_date or "", reverse=True)
    ]
    return ModelPage(
        summary=summary(spec, aliases, rows, windows, training_runs, paused),
        versions=rows,
        moves=[move.as_dict() for move in sorted(moves, key=lambda move: move.moved_at, reverse=True)],
        monitoring=windows,
        drift=drift_series(by_dag[ids["monitor"]], windows),
        requests=retrain_requests(windows, training_runs),
        predictions=prediction_batches(by_dag[ids["predict"]]),
        rollbacks=rollbacks,
    )
