"""Register and promote: model versions and the ``champion`` / ``challenger`` aliases in MLflow."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_mlc.core import tracking

CHAMPION = "champion"
CHALLENGER = "challenger"
TAG_GATE_PASSED = "mlc.gate_passed"
TAG_PROMOTED = "mlc.promoted"
TAG_PREVIOUS_CHAMPION = "mlc.previous_champion"
TAG_DECISION = "mlc.promotion_reason"
TAG_DECIDED_AT = "mlc.decided_at"


@dataclass(frozen=True)
class Decision:
    """What register/promote did (or, in a dry run, would have done)."""

    model: str
    version: str | None
    promoted: bool
    champion: str | None
    previous_champion: str | None
    reason: str
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def version_by_alias(client: Any, model: str, alias: str) -> Any | None:
    """The model version an alias points at, or None (also when the model is not registered yet)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model, alias)
    except MlflowException:
        return None


def find_version(client: Any, model: str, run_id: str) -> Any | None:
    """The version already registered from MLflow run ``run_id`` (a retried task finds it again)."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name = '{model}' and run_id = '{run_id}'")
    except MlflowException:
        return None
    return max(versions, key=lambda v: int(v.version)) if versions else None


def decide(
    passed: bool, reasons: list[str], force: bool, candidate_end: str | None, champion: Any | None
) -> tuple[bool, str]:
    """Whether the candidate takes ``champion``, and why.

    A candidate whose data window ends before the champion's (a backfill of old data) never takes
    it unless forced, so backfills cannot roll the live model back.
    """
    summary = "; ".join(reasons)
    if force:
        return True, f"forced by the run (gates: {summary})"
    if not passed:
        return False, f"gates failed: {summary}"
    champion_end = champion.tags.get(tracking.TAG_WINDOW_END) if champion is not None else None
    if champion_end and candidate_end and candidate_end < champion_end:
        return False, f"its data ends at {candidate_end}, before the champion's ({champion_end}): a backfill"
    return True, f"gates passed: {summary}"


def register_and_promote(
    client: Any,
    model: str,
    model_uri: str,
    run_id: str,
    passed: bool,
    reasons: list[str],
    version_tags: dict[str, str],
    force: bool = False,
    dry_run: bool = False,
) -> Decision:
    """Register the run's model, point ``challenger`` at it, and move ``champion`` when the decision allows.

    Every move is recorded on the version's tags: the decision, its reason, the previous champion.
    A dry run changes nothing and reports what would happen.
    """
    import mlflow

    champion = version_by_alias(client, model, CHAMPION)
    champion_version = str(champion.version) if champion is not None else None
    existing = find_version(client, model, run_id)
    if existing is not None and champion_version == str(existing.version):
        return Decision(model, champion_version, True, champion_version, None, "already champion (a retry)")
    promote, reason = decide(passed, reasons, force, version_tags.get(tracking.TAG_WINDOW_END), champion)
    if dry_run:
        version = str(existing.version) if existing is not None else None
        return Decision(
            model, version, False, champion_version, None, f"dry run; would promote: {promote} ({reason})", True
        )

    if existing is None:
        existing = mlflow.register_model(model_uri, model, tags=version_tags)
    version = str(existing.version)
    client.set_model_version_tag(model, version, TAG_GATE_PASSED, str(passed).lower())
    client.set_model_version_tag(model, version, TAG_DECISION, reason)
    client.set_model_version_tag(model, version, TAG_DECIDED_AT, datetime.now(timezone.utc).isoformat())
    client.set_model_version_tag(model, version, TAG_PROMOTED, str(promote).lower())
    client.set_registered_model_alias(model, CHALLENGER, version)
    if not promote:
        return Decision(model, version, False, champion_version, None, reason)

    client.set_model_version_tag(model, version, TAG_PREVIOUS_CHAMPION, champion_version or "")
    client.set_registered_model_alias(model, CHAMPION, version)
    client.delete_registered_model_alias(model, CHALLENGER)  # the challenger is the champion now
    return Decision(model, version, True, version, champion_version, reason)
