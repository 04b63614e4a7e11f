"""Register, promote and roll back: model versions, the ``champion`` / ``challenger`` aliases, their history."""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections.abc import Iterator, Mapping, Sequence
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


def readable_time(value: str | None) -> str:
    """An ISO 8601 moment in short, for run names and descriptions: ``2011-05-15``, or ``2011-05-15 06:30 UTC``.

    A moment at midnight UTC reads as its date, any other as its UTC date and minute (seconds are
    left out). An empty value gives ``""``; text that is not ISO 8601 comes back unchanged.
    """
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    if moment.time() == datetime.min.time():
        return moment.date().isoformat()
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def readable_window(start: str | None, end: str | None) -> str:
    """A data window in short: ``2011-01-01 .. 2011-04-01`` (the end is exclusive), or one side of it."""
    first, last = readable_time(start), readable_time(end)
    if first and last:
        return f"{first} .. {last}"
    if last:
        return f"data up to {last}"
    return f"data from {first}" if first else "all the data"


def estimator_words(path: str | None) -> str:
    """An estimator's import path in words, as a description names it.

    ``sklearn.ensemble.RandomForestRegressor`` gives ``Random forest regressor``; acronyms keep their
    capitals (``MLPClassifier``: ``MLP classifier``); without a path, ``Model``.
    """
    name = str(path or "").rpartition(".")[2]
    words = re.findall(r"[A-Z]+(?=[A-Z][a-z]|\d|\b)|[A-Z]?[a-z]+|\d+", name)
    if not words:
        return name or "Model"
    rest = [word if word.isupper() and len(word) > 1 else word.lower() for word in words[1:]]
    return " ".join([words[0][0].upper() + words[0][1:], *rest])


def _figure(value: Any, signed: bool = False) -> str:
    """A number to three significant digits, without an exponent or trailing zeros: ``0.841``, ``35.6``, ``0.5``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number) or number == 0:
        return f"{number:g}"
    decimals = max(2 - math.floor(math.log10(abs(number))), 0)
    text = f"{number:{'+' if signed else ''},.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _count(value: Any) -> str:
    try:
        return f"{int(float(value)):,}"
    except (TypeError, ValueError):
        return str(value)


def _evidence(tags: Mapping[str, str]) -> str:
    """The comparison behind a decision in one clause, from the version's evidence tags."""
    metric, score = tags.get(tracking.TAG_SCORE_METRIC), tags.get(tracking.TAG_SCORE)
    if not metric or score is None:
        return "no evaluation recorded"
    rows = tags.get(tracking.TAG_SCORED_ROWS)
    champion = tags.get(tracking.TAG_COMPARED_WITH)
    champion_score = tags.get(tracking.TAG_CHAMPION_SCORE)
    if champion and champion_score is not None:
        text = f"{metric} {_figure(score)} vs champion v{champion} {_figure(champion_score)}"
        if tags.get(tracking.TAG_IMPROVEMENT) is not None:
            text += f" (improvement {_figure(tags[tracking.TAG_IMPROVEMENT], signed=True)}"
            if tags.get(tracking.TAG_CI_LOW) is not None and tags.get(tracking.TAG_CI_HIGH) is not None:
                try:
                    level = f"{float(tags.get(tracking.TAG_CONFIDENCE, '')) * 100:g} % CI"
                except ValueError:
                    level = "CI"
                low, high = _figure(tags[tracking.TAG_CI_LOW], True), _figure(tags[tracking.TAG_CI_HIGH], True)
                text += f", {level} {low} .. {high}"
            text += ")"
        return text + (f" on {_count(rows)} rows neither trained on" if rows else "")
    if champion:
        unseen = f" ({_count(rows)} rows neither trained on)" if rows else ""
        return f"{metric} {_figure(score)} on its test rows, not compared with champion v{champion}{unseen}"
    on = f"{_count(rows)} test rows" if rows else "its test rows"
    return f"{metric} {_figure(score)} on {on}; there was no champion to compare with"


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


def version_description(
    tags: Mapping[str, str],
    *,
    promoted: bool,
    passed: bool,
    reason: str,
    checks: Sequence[str] = (),
    forced: bool = False,
    estimator: str | None = None,
    train_rows: int | None = None,
) -> str:
    """The readable description of a model version: what was trained, on which window, the decision and why.

    ``tags`` are the version's: its window (``mlc.window_start``, ``mlc.window_end``) and the evaluation
    behind the decision (the gate metric, both scores, the compared rows, the improvement and its
    interval). ``reason`` is the decision's (``mlc.promotion_reason``) and ``checks`` the evaluation's
    reasons, one per check; ``estimator`` is the estimator's import path and ``train_rows`` the number
    of training rows, each when known. A promotion reads::

        Hist gradient boosting regressor trained on 2011-02-14 .. 2011-05-15 (1,704 rows).

        Promoted to champion: rmse 78.2 vs champion v1 118 (improvement +39.8, 95 % CI +34.6 .. +44.9)
        on 426 rows neither trained on.

    A candidate that failed the evaluation is ``Rejected``, one that passed it but may not take
    ``champion`` (a backfill, or the champion moved meanwhile) ``Kept as challenger``. Either, and a
    forced promotion, ends with a ``Why:`` paragraph: the checks as a list when the evaluation
    failed or was overridden, else the decision's reason. Paragraphs are separated by blank lines
    (Markdown, as the MLflow UI shows a description).
    """
    window = readable_window(tags.get(tracking.TAG_WINDOW_START), tags.get(tracking.TAG_WINDOW_END))
    rows = f" ({train_rows:,} rows)" if train_rows is not None else ""
    trained = f"{estimator_words(estimator)} trained on {window}{rows}."
    if promoted:
        verdict = "Promoted to champion (forced)" if forced else "Promoted to champion"
    else:
        verdict = "Kept as challenger" if passed else "Rejected"
    paragraphs = [trained, f"{verdict}: {_sentence(_evidence(tags))}"]
    listed = "\n".join(f"- {_sentence(check)}" for check in checks if check.strip())
    if forced and listed:
        paragraphs.append(f"Why: forced by the run, whatever the checks said:\n{listed}")
    elif not promoted and not passed and listed:
        paragraphs.append(f"Why: the evaluation failed:\n{listed}")
    elif forced or not promoted:
        paragraphs.append(f"Why: {_sentence(reason)}")
    return "\n\n".join(paragraphs)


def rollback_note(description: str | None, move: Move, *, restored: bool) -> str:
    """``description`` with a rollback noted at its end: on the version ``move`` left, or on the one it restored.

    The note reads ``Rolled back from champion on <when> by <user>, to v<B>: <reason>`` on the version
    rolled back from, ``Restored as champion on <when> by <user>, replacing v<A>: <reason>`` on the
    target. A description that already holds the note comes back unchanged, so a retried rollback adds
    it once.
    """
    when, who = readable_time(move.moved_at), move.moved_by or "unknown"
    if restored:
        note = f"Restored as champion on {when} by {who}, replacing v{move.from_version}: {_sentence(move.reason)}"
    else:
        note = f"Rolled back from champion on {when} by {who}, to v{move.to_version}: {_sentence(move.reason)}"
    text = (description or "").rstrip()
    if note in text:
        return text
    return f"{text}\n\n{note}" if text else note


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
            client,
            self.experiment_id,
            {**self.key, tracking.TAG_KIND: tracking.KIND_CHAMPION_MOVE, tracking.TAG_MODEL: model},
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
            tracking.TAG_KIND: tracking.KIND_CHAMPION_MOVE,
            tracking.TAG_MODEL: model,
            tracking.TAG_MOVE: kind,
            tracking.TAG_FROM_VERSION: from_version or "",
            tracking.TAG_TO_VERSION: to_version,
            tracking.TAG_REASON: reason[:5000],
            tracking.TAG_MOVED_BY: self.moved_by,
            tracking.TAG_MOVED_AT: _now(),
        }
        name = f"rollback v{from_version} -> v{to_version}" if kind == "rollback" else f"promote v{to_version}"
        key = {**self.key, tracking.TAG_MODEL: model}
        run_id = tracking.get_or_create_run(client, self.experiment_id, key, tags, run_name=name)
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
        client, experiment.experiment_id, {tracking.TAG_KIND: tracking.KIND_CHAMPION_MOVE, tracking.TAG_MODEL: model}
    )
    return sorted((_move(run) for run in runs), key=lambda move: move.moved_at)


#: Seconds between two refreshes of a held lock's ``mlc.lock_heartbeat`` tag.
LOCK_HEARTBEAT_SECONDS = 5.0
#: A waiter breaks a lock whose heartbeat it saw unchanged for this long (six missed beats): its holder died.
LOCK_DEAD_AFTER_SECONDS = 30.0
#: What a broken lock is renamed to (``<lock>.broken-<its mlc.lock_since>``) before it is deleted.
BROKEN_SUFFIX = ".broken-"


@contextmanager
def registry_lock(
    client: Any,
    model: str,
    holder: str,
    timeout: float = 300,
    stale_after: float = 900,
    heartbeat: float = LOCK_HEARTBEAT_SECONDS,
    dead_after: float = LOCK_DEAD_AFTER_SECONDS,
) -> Iterator[None]:
    """Hold the model's registry lock: only one task at a time reads and moves its aliases.

    The lock is a registered model named ``<model>.mlc-lock``: the registry refuses a second model of
    the same name, so creating it succeeds for exactly one task, on any machine. It is deleted on
    release. While it is held, a daemon thread refreshes its ``mlc.lock_heartbeat`` tag every
    ``heartbeat`` seconds. A waiter breaks the lock when it has seen the same heartbeat for
    ``dead_after`` seconds of its own waiting (the holder died: killed, its machine gone), or when the
    lock is older than ``stale_after`` seconds by ``mlc.lock_since`` (a lock without a heartbeat, or
    clocks far apart). See ``_break_if_dead`` for how two waiters never both break it.

    Args:
        client: An MLflow client of the registry.
        model: The registered model whose aliases are guarded.
        holder: Who takes the lock (the ``mlc.lock_holder`` tag).
        timeout: Seconds to wait for the lock before failing.
        stale_after: Age in seconds after which any lock is broken.
        heartbeat: Seconds between two heartbeats of a held lock.
        dead_after: Seconds a waiter must see one heartbeat unchanged before it breaks the lock.

    Raises:
        MLCError: the lock was not released (nor broken) within ``timeout`` seconds.
    """
    import threading

    from mlflow.exceptions import MlflowException

    name = f"{model}{LOCK_SUFFIX}"
    deadline = time.monotonic() + timeout
    seen: dict[str, Any] = {}  # the heartbeat this waiter last saw and since when (its own clock)
    while True:
        since = repr(time.time())
        try:
            client.create_registered_model(
                name,
                tags={
                    tracking.TAG_LOCK_HOLDER: holder,
                    tracking.TAG_LOCK_SINCE: since,
                    tracking.TAG_LOCK_HEARTBEAT: since,
                },
                description=f"Held while {holder} moves the aliases of {model}; deleted when done.",
            )
            break
        except MlflowException as exc:
            # RESOURCE_DOES_NOT_EXIST: the lock existed, and was released before the store could say so
            if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST"):
                raise
        _break_if_dead(client, name, seen, stale_after, dead_after)
        if time.monotonic() > deadline:
            raise MLCError(f"the registry lock {name!r} was not released within {timeout:g} s")
        time.sleep(random.uniform(0.05, 0.25))
    released = threading.Event()
    beating = threading.Thread(
        target=_beat, args=(client, name, holder, since, heartbeat, released), name=f"{name} heartbeat", daemon=True
    )
    beating.start()
    try:
        yield
    finally:
        released.set()
        beating.join(timeout=30)
        _release(client, name, holder, since)


def _release(client: Any, name: str, holder: str, since: str) -> None:
    """Delete the lock ``name`` if it is still this holder's: one broken meanwhile may be another task's now."""
    from mlflow.exceptions import MlflowException

    try:
        if _held_by(client.get_registered_model(name).tags, holder, since):
            client.delete_registered_model(name)
    except MlflowException:
        pass  # broken meanwhile, and not taken again


def _held_by(tags: dict[str, str], holder: str, since: str) -> bool:
    """Whether the lock with ``tags`` is the one ``holder`` took at ``since`` (not broken and taken again)."""
    return tags.get(tracking.TAG_LOCK_HOLDER) == holder and tags.get(tracking.TAG_LOCK_SINCE) == since


def _beat(client: Any, name: str, holder: str, since: str, every: float, released: Any) -> None:
    """Refresh the held lock's heartbeat every ``every`` seconds until ``released`` is set.

    The lock is refreshed only while it is still this holder's (same holder and ``mlc.lock_since``); a
    failed refresh (the registry briefly unreachable) is tried again at the next beat.
    """
    while not released.wait(every):
        try:
            if not _held_by(client.get_registered_model(name).tags, holder, since):
                return  # broken: another holder's lock now, or none
            client.set_registered_model_tag(name, tracking.TAG_LOCK_HEARTBEAT, repr(time.time()))
        except Exception:  # noqa: BLE001 - a missed beat is retried; the lock's fate is decided by the waiters
            continue


def _break_if_dead(client: Any, name: str, seen: dict[str, Any], stale_after: float, dead_after: float) -> None:
    """Break the lock ``name`` when its holder is dead; ``seen`` is the calling waiter's memory between calls.

    Dead means: its heartbeat (``mlc.lock_heartbeat``) unchanged for ``dead_after`` seconds on this waiter's
    monotonic clock (so the clocks of the machines need not agree), or ``mlc.lock_since`` older than
    ``stale_after`` seconds.

    Breaking is a rename to ``<lock>.broken-<its mlc.lock_since>``, then a delete of the renamed model. The
    name is the same for every waiter that saw that lock, and the registry refuses a rename to a name that
    exists: of two waiters breaking one lock at once, the first renames it, the second's rename fails (the
    lock is gone, or the first waiter's new lock stands under the name while the broken one still blocks the
    rename target). A rename that caught a different lock (one taken between the look and the rename) is
    undone. The broken model is deleted a little later, by the next break, once it is older than ``stale_after``.
    """
    from mlflow.exceptions import MlflowException

    try:
        tags = client.get_registered_model(name).tags
    except MlflowException:
        return  # released meanwhile
    since = tags.get(tracking.TAG_LOCK_SINCE, "0")
    beat = tags.get(tracking.TAG_LOCK_HEARTBEAT)
    now = time.monotonic()
    identity = (tags.get(tracking.TAG_LOCK_HOLDER), since, beat)
    if seen.get("identity") != identity:
        seen.update(identity=identity, at=now)
    try:
        age = time.time() - float(since)
    except ValueError:
        age = math.inf
    dead = beat is not None and now - seen["at"] >= dead_after
    if not dead and age <= stale_after:
        return
    broken = f"{name}{BROKEN_SUFFIX}{since}"
    try:
        client.rename_registered_model(name, broken)
        renamed = client.get_registered_model(broken)
    except MlflowException:
        return  # released, or broken by another waiter meanwhile
    if renamed.tags.get(tracking.TAG_LOCK_SINCE, "0") != since:  # a newer lock, taken after the look: undo
        try:
            client.rename_registered_model(broken, name)
        except MlflowException:
            pass
        return
    seen.clear()
    _forget_broken(client, name, stale_after)


def _forget_broken(client: Any, name: str, older_than: float) -> None:
    """Delete the broken locks of ``name`` renamed more than ``older_than`` seconds ago (by the registry's clock)."""
    from mlflow.exceptions import MlflowException

    try:
        found = client.search_registered_models(f"name LIKE '{name}{BROKEN_SUFFIX}%'")
    except MlflowException:
        return
    newest = max((model.last_updated_timestamp or 0 for model in found), default=0)
    for model in found:
        if (newest - (model.last_updated_timestamp or 0)) / 1000 > older_than:
            try:
                client.delete_registered_model(model.name)
            except MlflowException:
                pass


def training_facts(client: Any, run_id: str) -> tuple[str | None, int | None]:
    """The estimator (import path, the run's ``estimator`` param) and the training rows of MLflow run ``run_id``.

    The rows are those of the dataset the run logged as its ``training`` input. Either is None when
    the run does not record it.
    """
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        return None, None
    rows = None
    for item in getattr(run.inputs, "dataset_inputs", None) or []:
        if {tag.key: tag.value for tag in item.tags}.get("mlflow.data.context") != "training":
            continue
        try:
            rows = int(json.loads(item.dataset.profile or "{}")["num_rows"])
        except (KeyError, TypeError, ValueError):
            rows = None
    return run.data.params.get("estimator"), rows


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
    Every move is recorded on the version's tags and, with ``log``, as a champion-move record; the
    version's description says the same in words (``version_description``). A retry finds its
    version by MLflow run id and changes nothing more. A dry run changes nothing.
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
        estimator, train_rows = training_facts(client, run_id)
        description = version_description(
            version_tags,
            promoted=promote,
            passed=passed,
            reason=reason,
            checks=reasons,
            forced=force and promote,
            estimator=estimator,
            train_rows=train_rows,
        )
        client.update_model_version(model, version, description=description)
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

    The target must exist and not be archived. The move is recorded (who, why, when) in ``log`` and
    noted in the descriptions of both versions (``rollback_note``); the versions' decision tags
    (``mlc.promotion_reason``, ``mlc.decided_at`` ...) keep the promotion decisions as they were. A
    retried rollback task finds its record and moves nothing again.
    """
    from mlflow.exceptions import MlflowException

    if not reason.strip():
        raise BadInputError("a rollback needs a reason")
    with registry_lock(client, model, holder=":".join(log.key.values())):
        done = log.find(client, model)
        if done is not None:
            _note_rollback(client, done)  # the earlier attempt may have died before noting it
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
        move = log.record(client, model, "rollback", str(champion.version), target, reason)
        _note_rollback(client, move)
        return move


def _note_rollback(client: Any, move: Move) -> None:
    """Add the rollback to the descriptions of both versions (``rollback_note``); a note already there is kept.

    A version deleted meanwhile is passed over: the move record is what counts.
    """
    from mlflow.exceptions import MlflowException

    for version, restored in ((move.from_version, False), (move.to_version, True)):
        if not version:
            continue
        try:
            current = client.get_model_version(move.model, version).description or ""
        except MlflowException:
            continue
        noted = rollback_note(current, move, restored=restored)
        if noted != current.rstrip():
            client.update_model_version(move.model, version, description=noted)
