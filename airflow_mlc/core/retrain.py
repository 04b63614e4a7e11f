"""Retraining requests: whether the monitoring signals ask for a retraining, and the hygiene around it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from airflow_mlc.core import tracking
from airflow_mlc.core.registry import registry_lock
from airflow_mlc.core.window import parse_moment


@dataclass(frozen=True)
class PastRequest:
    """A retraining request an earlier monitoring run made."""

    run_id: str
    window_start: str
    window_end: str


@dataclass(frozen=True)
class RetrainDecision:
    request: bool
    reason: str
    signals: list[str]


def signals(drift: Mapping[str, Any] | None, quality: Mapping[str, Any] | None) -> list[str]:
    """The reasons to retrain found by the drift and quality checks, in words."""
    found = []
    if drift and drift.get("drift_detected"):
        columns = ", ".join(drift.get("drifted_columns") or {})
        found.append(
            f"data drift: {drift['drifted_share']:.0%} of the columns drifted "
            f"(threshold {drift['drift_share_threshold']:.0%}): {columns}"
        )
    if quality and quality.get("degraded"):
        found.append(
            f"quality: {quality['metric']} is {quality['live_metrics'][quality['metric']]:.4g} on "
            f"{quality['labelled_rows']} labelled rows, {quality['degradation']:.0%} worse than at evaluation "
            f"({quality['baseline']:.4g}; tolerance {quality['tolerance']:.0%})"
        )
    return found


def decide_retrain(
    found: list[str],
    window: Mapping[str, str | None],
    past: list[PastRequest],
    cooldown_days: float,
    force: bool = False,
) -> RetrainDecision:
    """Request a retraining when a signal holds, unless one was requested for this window or lately.

    "Lately" is within the cooldown, measured in data time between window ends, so backfills behave
    like live runs.

    ``force`` overrides the same-window and cooldown rules, never the need for a signal.
    """
    if not found:
        return RetrainDecision(False, "no signal: no drift and no quality loss", found)
    if force:
        return RetrainDecision(True, "forced by the run: " + "; ".join(found), found)
    start, end = window.get("start") or "", window.get("end") or ""
    for request in past:
        if (request.window_start, request.window_end) == (start, end):
            return RetrainDecision(
                False, f"a retraining was already requested for this window by run {request.run_id}", found
            )
    end_moment = parse_moment(end)
    cooldown = timedelta(days=cooldown_days)
    for request in past:
        other = parse_moment(request.window_end)
        if end_moment and other and abs(end_moment - other) < cooldown:
            return RetrainDecision(
                False,
                f"within the cooldown of {cooldown_days:g} days of the request for the window ending "
                f"{request.window_end} (run {request.run_id})",
                found,
            )
    return RetrainDecision(True, "; ".join(found), found)


def past_requests(client: Any, experiment_name: str, model: str, except_run_id: str) -> list[PastRequest]:
    """The retraining requests recorded on ``model``'s monitoring runs, but those of Airflow run ``except_run_id``."""
    return [
        PastRequest(
            run.data.tags.get(tracking.TAG_RUN_ID, ""),
            run.data.tags.get(tracking.TAG_WINDOW_START, ""),
            run.data.tags.get(tracking.TAG_WINDOW_END, ""),
        )
        for run in tracking.monitoring_runs(client, experiment_name, model)
        if run.data.tags.get(tracking.TAG_RETRAIN_REQUESTED) == "true"
        and run.data.tags.get(tracking.TAG_RUN_ID) != except_run_id
    ]


def decide_and_record(
    client: Any,
    model: str,
    experiment_name: str,
    monitoring_run_id: str,
    airflow_run_id: str,
    found: list[str],
    window: Mapping[str, str | None],
    cooldown_days: float,
    force: bool = False,
) -> RetrainDecision:
    """Decide on a retraining and record the decision on the monitoring run, one decision at a time.

    The decisions of ``model`` are serialised by a registry lock of their own (``<model>.retrain-requests``):
    concurrent monitoring runs (a backfill runs several at once) then see each other's requests, and of
    runs whose windows fall inside one cooldown only one requests a retraining.
    """
    with registry_lock(client, f"{model}.retrain-requests", holder=f"retraining decision of {airflow_run_id}"):
        past = past_requests(client, experiment_name, model, except_run_id=airflow_run_id)
        decision = decide_retrain(found, window, past, cooldown_days, force)
        client.set_tag(monitoring_run_id, tracking.TAG_RETRAIN_REQUESTED, str(decision.request).lower())
        client.set_tag(monitoring_run_id, tracking.TAG_RETRAIN_REASON, decision.reason[:5000])
    return decision
