"""Register, promote and roll back: model versions, the ``champion`` / ``challenger`` aliases, their history."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from airflow_mlc.core import tracking
from airflow_mlc.errors import BadInputError, MLCError

CHAMPION = "champion"
CHALLENGER = "challenger"


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


#: A champion-move record: one MLflow run per move, in the model's registry experiment.
KIND_CHAMPION_MOVE = "champion_move"
LOCK_SUFFIX = ".mlc-lock"


@dataclass(frozen=True)
class Move:
    """One move of ``champion``: a promotion or a rollback, with who, why and when."""

    kind: str
    model: str
    from_version: str | None
    to_version: str
    reason: str
    moved_by: str
    moved_at: str
    dag_id: str = ""
    run_id: str = ""
    evidence: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MoveLog:
    """Where champion moves are recorded, and the Airflow task that records them.

    ``key`` (the task's ``mlc.dag_id``, ``mlc.run_id``, ``mlc.task_id``) makes recording idempotent:
    a retried task finds its record instead of writing a second one.
    """

    experiment_id: str
    key: dict[str, str]
    moved_by: str

    def find(self, client: Any, model: str) -> Move | None:
        """This task's recorded move of ``model``, if it made one."""
        runs = tracking.find_runs(
            client, self.experiment_id, {**self.key, tracking.TAG_KIND: KIND_CHAMPION_MOVE, tracking.TAG_MODEL: model}
        )
        return _move(runs[0]) if runs else None

    def record(
        self,
        client: Any,
        model: str,
        kind: str,
        from_version: str | None,
        to_version: str,
        reason: str,
        evidence: dict[str, str] | None = None,
    ) -> Move:
        """Record a move; ``evidence`` (the comparison behind a promotion, ``tracking.EVIDENCE_TAGS``) goes with it."""
        tags = {
            **(evidence or {}),
            tracking.TAG_KIND: KIND_CHAMPION_MOVE,
            tracking.TAG_MODEL: model,
            tracking.TAG_MOVE: kind,
            tracking.TAG_FROM_VERSION: from_version or "",
            tracking.TAG_TO_VERSION: to_version,
            tracking.TAG_REASON: reason[:5000],
            tracking.TAG_MOVED_BY: self.moved_by,
            tracking.TAG_MOVED_AT: _now(),
        }
        run_id = tracking.get_or_create_run(client, self.experiment_id, {**self.key, tracking.TAG_MODEL: model}, tags)
        return _move(client.get_run(run_id))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _move(run: Any) -> Move:
    tags = run.data.tags
    return Move(
        kind=tags[tracking.TAG_MOVE],
        model=tags[tracking.TAG_MODEL],
        from_version=tags.get(tracking.TAG_FROM_VERSION) or None,
        to_version=tags[tracking.TAG_TO_VERSION],
        reason=tags.get(tracking.TAG_REASON, ""),
        moved_by=tags.get(tracking.TAG_MOVED_BY, ""),
        moved_at=tags.get(tracking.TAG_MOVED_AT, ""),
        dag_id=tags.get(tracking.TAG_DAG_ID, ""),
        run_id=tags.get(tracking.TAG_RUN_ID, ""),
        evidence={k: v for k, v in tags.items() if k in tracking.EVIDENCE_TAGS},
    )


def champion_history(client: Any, experiment_name: str, model: str) -> list[Move]:
    """Every recorded move of ``model``'s champion, oldest first."""
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return []
    runs = tracking.find_runs(
        client, experiment.experiment_id, {tracking.TAG_KIND: KIND_CHAMPION_MOVE, tracking.TAG_MODEL: model}
    )
    return sorted((_move(run) for run in runs), key=lambda move: move.moved_at)


@contextmanager
def registry_lock(
    client: Any, model: str, holder: str, timeout: float = 300, stale_after: float = 900
) -> Iterator[None]:
    """Hold the model's registry lock: only one task at a time reads and moves its aliases.

    The lock is a registered model named ``<model>.mlc-lock``: the registry refuses a second model of
    the same name, so creating it succeeds for exactly one task, on any machine. It is deleted on
    release; a lock older than ``stale_after`` seconds (its holder died) is broken.
    """
    from mlflow.exceptions import MlflowException

    name = f"{model}{LOCK_SUFFIX}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.create_registered_model(
                name,
                tags={tracking.TAG_LOCK_HOLDER: holder, tracking.TAG_LOCK_SINCE: str(time.time())},
                description=f"Held while {holder} moves the aliases of {model}; deleted when done.",
            )
            break
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        _break_if_stale(client, name, stale_after)
        if time.monotonic() > deadline:
            raise MLCError(f"the registry lock {name!r} was not released within {timeout:g} s")
        time.sleep(random.uniform(0.05, 0.25))
    try:
        yield
    finally:
        try:
            client.delete_registered_model(name)
        except MlflowException:
            pass  # broken as stale meanwhile


def _break_if_stale(client: Any, name: str, stale_after: float) -> None:
    from mlflow.exceptions import MlflowException

    try:
        since = float(client.get_registered_model(name).tags.get(tracking.TAG_LOCK_SINCE, "0"))
        if time.time() - since > stale_after:
            client.delete_registered_model(name)
    except MlflowException:
        pass  # released meanwhile


def register_and_promote(
    client: Any,
    model: str,
    model_uri: str,
    run_id: str,
    passed: bool,
    reasons: list[str],
    version_tags: dict[str, str],
    *,
    evaluated_against: str | None,
    force: bool = False,
    dry_run: bool = False,
    log: MoveLog | None = None,
) -> Decision:
    """Register the run's model, point ``challenger`` at it, and move ``champion`` when the decision allows.

    The decision is taken and carried out under the model's registry lock, against the champion as it
    is at that moment: if ``champion`` moved since the candidate was evaluated against
    ``evaluated_against``, the comparison is stale and the candidate is not promoted (unless forced).
    Every move is recorded on the version's tags and, with ``log``, as a champion-move record. A
    retry finds its version by MLflow run id and changes nothing more. A dry run changes nothing.
    """
    import mlflow

    with registry_lock(client, model, holder=run_id):
        champion = version_by_alias(client, model, CHAMPION)
        champion_version = str(champion.version) if champion is not None else None
        existing = find_version(client, model, run_id)
        if existing is not None and champion_version == str(existing.version):
            previous = existing.tags.get(tracking.TAG_PREVIOUS_CHAMPION) or None
            if log is not None and log.find(client, model) is None:  # the earlier attempt died before recording
                reason = existing.tags.get(tracking.TAG_DECISION, "")
                evidence = {k: v for k, v in existing.tags.items() if k in tracking.EVIDENCE_TAGS}
                log.record(client, model, "promotion", previous, champion_version, reason, evidence)
            return Decision(model, champion_version, True, champion_version, previous, "already champion (a retry)")
        promote, reason = decide(passed, reasons, force, version_tags.get(tracking.TAG_WINDOW_END), champion)
        if promote and not force and champion_version != evaluated_against:
            promote = False
            reason = (
                f"the champion moved from {evaluated_against or 'none'} to {champion_version} after this candidate "
                "was evaluated: the comparison is stale, run the training again to compare with the new champion"
            )
        if dry_run:
            version = str(existing.version) if existing is not None else None
            return Decision(
                model, version, False, champion_version, None, f"dry run; would promote: {promote} ({reason})", True
            )

        if existing is None:
            existing = mlflow.register_model(model_uri, model, tags=version_tags)
        version = str(existing.version)
        client.set_model_version_tag(model, version, tracking.TAG_GATE_PASSED, str(passed).lower())
        client.set_model_version_tag(model, version, tracking.TAG_DECISION, reason)
        client.set_model_version_tag(model, version, tracking.TAG_DECIDED_AT, _now())
        client.set_model_version_tag(model, version, tracking.TAG_PROMOTED, str(promote).lower())
        client.set_registered_model_alias(model, CHALLENGER, version)
        if not promote:
            return Decision(model, version, False, champion_version, None, reason)

        client.set_model_version_tag(model, version, tracking.TAG_PREVIOUS_CHAMPION, champion_version or "")
        client.set_registered_model_alias(model, CHAMPION, version)
        client.delete_registered_model_alias(model, CHALLENGER)  # the challenger is the champion now
        if log is not None:
            evidence = {k: v for k, v in version_tags.items() if k in tracking.EVIDENCE_TAGS}
            log.record(client, model, "promotion", champion_version, version, reason, evidence)
        return Decision(model, version, True, version, champion_version, reason)


def rollback(client: Any, model: str, target: str | None, reason: str, log: MoveLog) -> Move:
    """Point ``champion`` back at ``target``, or at the current champion's previous champion.

    The target must exist and not be archived. The move is recorded (who, why, when) in ``log``; a
    retried rollback task finds its record and moves nothing again.
    """
    from mlflow.exceptions import MlflowException

    if not reason.strip():
        raise BadInputError("a rollback needs a reason")
    with registry_lock(client, model, holder=":".join(log.key.values())):
        done = log.find(client, model)
        if done is not None:
            return done
        champion = version_by_alias(client, model, CHAMPION)
        if champion is None:
            raise BadInputError(f"model {model!r} has no champion to roll back")
        target = str(target or champion.tags.get(tracking.TAG_PREVIOUS_CHAMPION) or "")
        if not target:
            raise BadInputError(
                f"champion version {champion.version} of {model!r} records no previous champion: name a target version"
            )
        try:
            version = client.get_model_version(model, target)
        except MlflowException:
            raise BadInputError(f"version {target!r} of model {model!r} does not exist") from None
        if str(version.current_stage).lower() == "archived":
            raise BadInputError(f"version {target} of model {model!r} is archived")
        if target == str(champion.version):
            raise BadInputError(f"version {target} of model {model!r} is already champion")
        client.set_registered_model_alias(model, CHAMPION, target)
        note = f"rolled back from {champion.version}: {reason}"
        client.set_model_version_tag(model, target, tracking.TAG_DECISION, note)
        client.set_model_version_tag(model, target, tracking.TAG_DECIDED_AT, _now())
        return log.record(client, model, "rollback", str(champion.version), target, reason)
