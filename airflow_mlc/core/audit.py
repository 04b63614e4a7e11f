"""A model's decision history for audit: every decision, with who, why and when, exported as JSON or CSV.

Read from the MLflow records the life cycle keeps (docs/governance.md#decision-history):

- ``decision``: each version's promotion decision (``mlc.promoted``, ``mlc.promotion_reason``, when it
  was decided, what triggered the training, the evidence of the comparison);
- ``promotion`` and ``rollback``: each move of ``champion`` (who moved it, why, when; the champion-moves
  experiment);
- ``rollout``: each acted-on judgement of a challenger on live data (promote, roll_back, advance);
- ``retraining_request``: each monitoring run whose retraining decision asked for a new training.

Events are ordered by time. :func:`write_history` writes them as a JSON list or a CSV table (``details``
as a JSON text column); :func:`read_history` reads either back into the same events.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

from airflow_mlc.core import tracking
from airflow_mlc.core.registry import champion_history
from airflow_mlc.errors import BadInputError
from airflow_mlc.spec import ModelLifecycleSpec

#: The export formats.
FORMATS = ("json", "csv")
#: Version tags copied into a decision's details: the evidence and the context of the decision.
DECISION_DETAIL_TAGS = (
    tracking.TAG_SCORE_METRIC,
    tracking.TAG_SCORE,
    tracking.TAG_CHAMPION_SCORE,
    tracking.TAG_COMPARED_WITH,
    tracking.TAG_IMPROVEMENT,
    tracking.TAG_CI_LOW,
    tracking.TAG_CI_HIGH,
    tracking.TAG_CONFIDENCE,
    tracking.TAG_SCORED_ON,
    tracking.TAG_WINDOW_START,
    tracking.TAG_WINDOW_END,
    tracking.TAG_FINGERPRINT,
    tracking.TAG_PREVIOUS_CHAMPION,
)
PAGE = 1000


@dataclass(frozen=True)
class DecisionEvent:
    """One decision about a model: ``kind``, ``at`` (ISO time, UTC), the version it is about, its outcome and why."""

    at: str
    kind: str
    model: str
    version: str
    outcome: str
    reason: str
    by: str = ""
    dag_id: str = ""
    run_id: str = ""
    details: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(millis: Any) -> str:
    if millis in (None, ""):
        return ""
    return datetime.fromtimestamp(int(millis) / 1000, tz=timezone.utc).isoformat()


def _pages(search: Any, **arguments: Any) -> Iterator[Any]:
    """Every result of an MLflow search that pages (``max_results``, ``page_token``)."""
    token = None
    while True:
        page = search(max_results=PAGE, page_token=token, **arguments)
        yield from page
        token = getattr(page, "token", None)
        if not token:
            return


def _runs(client: Any, experiment_name: str, wanted: str) -> Iterator[Any]:
    """Every run of the experiment matching the filter ``wanted``; nothing when the experiment does not exist."""
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is not None:
        yield from _pages(client.search_runs, experiment_ids=[experiment.experiment_id], filter_string=wanted)


def version_decisions(client: Any, model: str) -> list[DecisionEvent]:
    """The promotion decision recorded on each version of ``model``."""
    events = []
    for version in _pages(client.search_model_versions, filter_string=f"name = '{model}'"):
        tags = dict(version.tags or {})
        promoted = tags.get(tracking.TAG_PROMOTED)
        if promoted is None:
            continue  # registered outside airflow-mlc, or not decided yet
        events.append(
            DecisionEvent(
                at=tags.get(tracking.TAG_DECIDED_AT) or _iso(version.creation_timestamp),
                kind="decision",
                model=model,
                version=str(version.version),
                outcome="promoted" if promoted == "true" else "rejected",
                reason=tags.get(tracking.TAG_DECISION, ""),
                by=tags.get(tracking.TAG_TRIGGERED_BY, ""),
                dag_id=tags.get(tracking.TAG_DAG_ID, ""),
                run_id=tags.get(tracking.TAG_RUN_ID, ""),
                details={tag: tags[tag] for tag in DECISION_DETAIL_TAGS if tags.get(tag)},
            )
        )
    return events


def champion_moves(client: Any, spec: ModelLifecycleSpec) -> list[DecisionEvent]:
    """Every recorded move of the champion: promotions and rollbacks."""
    model = spec.registered_model_name
    return [
        DecisionEvent(
            at=move.moved_at,
            kind=move.kind if move.kind == "rollback" else "promotion",
            model=model,
            version=move.to_version,
            outcome=f"champion v{move.from_version} -> v{move.to_version}" if move.from_version else "first champion",
            reason=move.reason,
            by=move.moved_by,
            dag_id=move.dag_id,
            run_id=move.run_id,
            details=dict(move.evidence),
        )
        for move in champion_history(client, spec.registry_experiment_name, model)
    ]


def rollout_judgements(client: Any, spec: ModelLifecycleSpec) -> list[DecisionEvent]:
    """Every acted-on rollout judgement of the model's challengers: promoted, rolled back, advanced."""
    model = spec.registered_model_name
    wanted = f"tags.`{tracking.TAG_KIND}` = '{tracking.KIND_ROLLOUT}' and tags.`{tracking.TAG_MODEL}` = '{model}'"
    events = []
    for run in _runs(client, spec.registry_experiment_name, wanted):
        tags = run.data.tags
        events.append(
            DecisionEvent(
                at=tags.get(tracking.TAG_MOVED_AT, ""),
                kind="rollout",
                model=model,
                version=tags.get(tracking.TAG_TO_VERSION, ""),
                outcome=tags.get(tracking.TAG_ROLLOUT_ACTION, ""),
                reason=tags.get(tracking.TAG_REASON, ""),
                by=tags.get(tracking.TAG_MOVED_BY, ""),
                dag_id=tags.get(tracking.TAG_DAG_ID, ""),
                run_id=tags.get(tracking.TAG_RUN_ID, ""),
                details={
                    "champion": tags.get(tracking.TAG_FROM_VERSION, ""),
                    "next_step": tags.get(tracking.TAG_ROLLOUT_STEP, ""),
                },
            )
        )
    return events


def retraining_requests(client: Any, spec: ModelLifecycleSpec) -> list[DecisionEvent]:
    """Every monitoring run of the model whose retraining decision asked for a training."""
    model = spec.registered_model_name
    # monitoring runs are tagged with the spec's name (operators.monitor)
    wanted = f"tags.`{tracking.TAG_MODEL}` = '{spec.name}' and tags.`{tracking.TAG_RETRAIN_REQUESTED}` = 'true'"
    return [
        DecisionEvent(
            at=_iso(run.info.start_time),
            kind="retraining_request",
            model=model,
            version=run.data.tags.get(tracking.TAG_MODEL_VERSION, ""),
            outcome="requested",
            reason=run.data.tags.get(tracking.TAG_RETRAIN_REASON, ""),
            by=run.data.tags.get(tracking.TAG_DAG_ID, ""),
            dag_id=run.data.tags.get(tracking.TAG_DAG_ID, ""),
            run_id=run.data.tags.get(tracking.TAG_RUN_ID, ""),
            details={
                tag: run.data.tags[tag]
                for tag in (tracking.TAG_WINDOW_START, tracking.TAG_WINDOW_END, tracking.TAG_DRIFTED_SHARE)
                if run.data.tags.get(tag)
            },
        )
        for run in _runs(client, spec.monitoring_experiment_name, wanted)
    ]


def decision_history(client: Any, spec: ModelLifecycleSpec) -> list[DecisionEvent]:
    """Every decision about the spec's model, oldest first."""
    events = [
        *version_decisions(client, spec.registered_model_name),
        *champion_moves(client, spec),
        *rollout_judgements(client, spec),
        *retraining_requests(client, spec),
    ]
    return sorted(events, key=lambda event: (event.at, event.kind, event.version))


def write_history(events: Sequence[DecisionEvent], file_format: str) -> str:
    """The events as text: a JSON list of objects, or a CSV table with ``details`` as JSON text."""
    if file_format == "json":
        return json.dumps([event.as_dict() for event in events], indent=2, sort_keys=True) + "\n"
    if file_format != "csv":
        raise BadInputError(f"export format {file_format!r}: use one of {', '.join(FORMATS)}")
    names = [f.name for f in fields(DecisionEvent)]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for event in events:
        row = event.as_dict()
        row["details"] = json.dumps(row["details"], sort_keys=True)
        writer.writerow(row)
    return out.getvalue()


def read_history(text: str, file_format: str) -> list[DecisionEvent]:
    """The events of a text :func:`write_history` wrote."""
    if file_format == "json":
        return [DecisionEvent(**entry) for entry in json.loads(text)]
    if file_format != "csv":
        raise BadInputError(f"export format {file_format!r}: use one of {', '.join(FORMATS)}")
    rows = csv.DictReader(io.StringIO(text))
    return [DecisionEvent(**{**row, "details": json.loads(row["details"] or "{}")}) for row in rows]
