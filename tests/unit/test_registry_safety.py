"""Registry moves that cannot go wrong: retries, stale comparisons, races, rollback and its history."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from airflow_mlc.core import tracking
from airflow_mlc.core.registry import (
    BROKEN_SUFFIX,
    CHAMPION,
    LOCK_SUFFIX,
    MoveLog,
    champion_history,
    register_and_promote,
    registry_lock,
    rollback,
    version_by_alias,
)
from airflow_mlc.errors import BadInputError, MLCError

pytestmark = pytest.mark.unit
HISTORY = "safety/champion-moves"


@pytest.fixture
def target(tmp_path: Path) -> tracking.MlflowTarget:
    return tracking.embedded_target(tmp_path)


def candidate(target: tracking.MlflowTarget, label: str, window_end: str = "2011-04-01T00:00:00+00:00"):
    """A logged (tiny) model run; returns (run_id, model_uri, version tags)."""
    import mlflow
    from sklearn.dummy import DummyRegressor

    client = target.activate()
    experiment_id = tracking.ensure_experiment(client, "safety", target.artifact_location)
    with mlflow.start_run(experiment_id=experiment_id, run_name=label) as run:
        info = mlflow.sklearn.log_model(
            DummyRegressor().fit([[0.0], [1.0]], [0.0, 1.0]),
            name="model",
            serialization_format="cloudpickle",
            pip_requirements=mlflow.sklearn.get_default_pip_requirements(),
        )
    return run.info.run_id, info.model_uri, {tracking.TAG_WINDOW_END: window_end}


def move_log(client, run_id: str, task_id: str = "register") -> MoveLog:
    experiment_id = tracking.ensure_experiment(client, HISTORY, None)
    key = {tracking.TAG_DAG_ID: "mlc_safety_train", tracking.TAG_RUN_ID: run_id, tracking.TAG_TASK_ID: task_id}
    return MoveLog(experiment_id, key, moved_by="alice")


def promote(client, model: str, made: tuple, evaluated_against: str | None, run_key: str, **options):
    run_id, uri, tags = made
    return register_and_promote(
        client,
        model,
        uri,
        run_id,
        True,
        ["ok"],
        tags,
        evaluated_against=evaluated_against,
        log=move_log(client, run_key),
        **options,
    )


def champion(client, model: str) -> str | None:
    found = version_by_alias(client, model, CHAMPION)
    return str(found.version) if found is not None else None


def test_a_retried_promote_changes_nothing(target) -> None:
    client = target.activate()
    made = candidate(target, "first")
    first = promote(client, "m", made, None, "run_1")
    again = promote(client, "m", made, None, "run_1")

    assert first.promoted and again.reason == "already champion (a retry)"
    assert len(client.search_model_versions("name = 'm'")) == 1
    assert [(m.kind, m.from_version, m.to_version) for m in champion_history(client, HISTORY, "m")] == [
        ("promotion", None, "1")
    ]
    assert client.search_registered_models(f"name = 'm{LOCK_SUFFIX}'") == []  # the lock was released


def test_a_retry_records_the_move_an_interrupted_attempt_did_not(target) -> None:
    client = target.activate()
    promote(client, "m", candidate(target, "v1"), None, "run_1")
    made = candidate(target, "v2")
    # moved champion, recorded nothing: as if the task died right after the move
    register_and_promote(client, "m", made[1], made[0], True, ["ok"], made[2], evaluated_against="1")

    retry = promote(client, "m", made, "1", "run_2")
    assert retry.reason == "already champion (a retry)" and retry.previous_champion == "1"
    history = champion_history(client, HISTORY, "m")
    assert [(m.kind, m.from_version, m.to_version) for m in history] == [
        ("promotion", None, "1"),
        ("promotion", "1", "2"),
    ]
    assert history[-1].reason == "gates passed: ok"


def test_a_candidate_evaluated_against_an_older_champion_is_not_promoted(target) -> None:
    client = target.activate()
    promote(client, "m", candidate(target, "v1"), None, "run_1")
    promote(client, "m", candidate(target, "v2"), "1", "run_2")

    stale = promote(client, "m", candidate(target, "v3"), "1", "run_3")
    assert not stale.promoted and "the champion moved from 1 to 2" in stale.reason
    assert champion(client, "m") == "2"
    forced = promote(client, "m", candidate(target, "v4"), "1", "run_4", force=True)
    assert forced.promoted and champion(client, "m") == "4"


def at_once(count: int, work) -> list:
    """Run ``work(0) .. work(count - 1)`` in threads released together; their results, in finishing order."""
    results: list = []
    start = threading.Barrier(count)

    def race(index: int) -> None:
        start.wait()
        results.append(work(index))

    threads = [threading.Thread(target=race, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_promotions_leave_one_champion_and_a_consistent_history(target) -> None:
    client = target.activate()
    promote(client, "m", candidate(target, "v1"), None, "run_0")
    made = [candidate(target, f"racer{i}") for i in range(4)]

    decisions = at_once(len(made), lambda i: promote(target.activate(), "m", made[i], "1", f"run_racer{i}"))

    winners = [d for d in decisions if d.promoted]
    assert len(decisions) == 4 and len(winners) == 1
    assert champion(client, "m") == winners[0].version
    assert all("the champion moved from 1 to" in d.reason for d in decisions if not d.promoted)
    history = champion_history(client, HISTORY, "m")
    assert [(m.from_version, m.to_version) for m in history] == [(None, "1"), ("1", winners[0].version)]


def test_rollback_restores_the_previous_champion_and_both_moves_are_recorded(target) -> None:
    client = target.activate()
    promote(client, "m", candidate(target, "v1"), None, "run_1")
    promote(client, "m", candidate(target, "v2"), "1", "run_2")
    log = move_log(client, "manual_rollback", task_id="rollback")

    move = rollback(client, "m", None, "v2 scores badly on live data", log)
    assert (move.kind, move.from_version, move.to_version, move.moved_by) == ("rollback", "2", "1", "alice")
    assert champion(client, "m") == "1"
    assert rollback(client, "m", None, "v2 scores badly on live data", log) == move  # a retry moves nothing
    assert champion(client, "m") == "1"

    history = champion_history(client, HISTORY, "m")
    assert [(m.kind, m.from_version, m.to_version) for m in history] == [
        ("promotion", None, "1"),
        ("promotion", "1", "2"),
        ("rollback", "2", "1"),
    ]
    assert history[-1].reason == "v2 scores badly on live data" and history[-1].moved_at


def test_rollback_refuses_bad_targets(target) -> None:
    client = target.activate()
    promote(client, "m", candidate(target, "v1"), None, "run_1")
    promote(client, "m", candidate(target, "v2"), "1", "run_2")
    log = move_log(client, "bad_rollback", task_id="rollback")

    with pytest.raises(BadInputError, match="version '7' of model 'm' does not exist"):
        rollback(client, "m", "7", "why not", log)
    with pytest.raises(BadInputError, match="already champion"):
        rollback(client, "m", "2", "why not", log)
    with pytest.raises(BadInputError, match="needs a reason"):
        rollback(client, "m", "1", " ", log)
    client.transition_model_version_stage("m", "1", "Archived")
    with pytest.raises(BadInputError, match="version 1 of model 'm' is archived"):
        rollback(client, "m", None, "why not", log)
    assert champion(client, "m") == "2"
    with pytest.raises(BadInputError, match="model 'n' has no champion"):
        rollback(client, "n", None, "why not", log)


def test_the_lock_waits_and_a_stale_lock_is_broken(target) -> None:
    client = target.activate()
    with registry_lock(client, "m", holder="a"):
        started = time.monotonic()
        with pytest.raises(MLCError, match="was not released within 0.5 s"):
            with registry_lock(client, "m", holder="b", timeout=0.5):
                pass
        assert time.monotonic() - started >= 0.5
    client.create_registered_model(f"m{LOCK_SUFFIX}", tags={tracking.TAG_LOCK_SINCE: str(time.time() - 3600)})
    with registry_lock(client, "m", holder="c", timeout=5, stale_after=60):
        assert client.get_registered_model(f"m{LOCK_SUFFIX}").tags["mlc.lock_holder"] == "c"


HOLDER = """
import sys, time
from mlflow import MlflowClient
from airflow_mlc.core.registry import registry_lock
client = MlflowClient(tracking_uri=sys.argv[1], registry_uri=sys.argv[1])
with registry_lock(client, "m", holder="doomed", heartbeat=0.2):
    print("held", flush=True)
    time.sleep(600)
"""


def broken_locks(client) -> list[str]:
    return [m.name for m in client.search_registered_models(f"name LIKE 'm{LOCK_SUFFIX}{BROKEN_SUFFIX}%'")]


def test_a_lock_whose_holder_was_killed_is_taken_over_within_the_heartbeat_bound(target) -> None:
    client = target.activate()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, target.tracking_uri], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        time.sleep(0.6)  # a few heartbeats
        beat = client.get_registered_model(f"m{LOCK_SUFFIX}").tags[tracking.TAG_LOCK_HEARTBEAT]
        assert float(beat) > float(client.get_registered_model(f"m{LOCK_SUFFIX}").tags[tracking.TAG_LOCK_SINCE])
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    started = time.monotonic()
    with registry_lock(client, "m", holder="next", timeout=20, heartbeat=0.2, dead_after=1.5):
        waited = time.monotonic() - started
        assert client.get_registered_model(f"m{LOCK_SUFFIX}").tags[tracking.TAG_LOCK_HOLDER] == "next"
    assert 1.5 <= waited < 6, waited
    assert len(broken_locks(client)) == 1  # renamed aside, deleted by a later break once old
    assert client.search_registered_models(f"name = 'm{LOCK_SUFFIX}'") == []


def test_a_live_slow_holder_keeps_its_lock(target) -> None:
    client = target.activate()
    held = threading.Event()
    spans: dict[str, tuple[float, float]] = {}

    def slow() -> None:
        with registry_lock(client, "m", holder="slow", heartbeat=0.2):
            spans["slow"] = (time.monotonic(), 0.0)
            held.set()
            time.sleep(3)  # twice the waiter's dead_after
            spans["slow"] = (spans["slow"][0], time.monotonic())

    thread = threading.Thread(target=slow)
    thread.start()
    assert held.wait(10)
    with registry_lock(client, "m", holder="waiter", timeout=20, heartbeat=0.2, dead_after=1.5):
        entered = time.monotonic()
    thread.join()
    assert entered >= spans["slow"][1]  # the waiter got in only after the holder let go
    assert broken_locks(client) == []


def test_a_holder_whose_lock_was_broken_leaves_the_next_holders_lock_alone(target) -> None:
    client = target.activate()
    with registry_lock(client, "m", holder="slow", heartbeat=60):
        # what a waiter does to a lock it found dead, then another task taking the lock
        since = client.get_registered_model(f"m{LOCK_SUFFIX}").tags[tracking.TAG_LOCK_SINCE]
        client.rename_registered_model(f"m{LOCK_SUFFIX}", f"m{LOCK_SUFFIX}{BROKEN_SUFFIX}{since}")
        client.create_registered_model(f"m{LOCK_SUFFIX}", tags={tracking.TAG_LOCK_HOLDER: "next"})
    assert client.get_registered_model(f"m{LOCK_SUFFIX}").tags[tracking.TAG_LOCK_HOLDER] == "next"


def test_two_waiters_breaking_one_dead_lock_never_hold_it_together(target) -> None:
    client = target.activate()
    now = repr(time.time())
    client.create_registered_model(
        f"m{LOCK_SUFFIX}",
        tags={tracking.TAG_LOCK_HOLDER: "dead", tracking.TAG_LOCK_SINCE: now, tracking.TAG_LOCK_HEARTBEAT: now},
    )
    spans: list[tuple[float, float]] = []
    errors: list[BaseException] = []

    def wait_and_hold(name: str) -> None:
        try:
            with registry_lock(client, "m", holder=name, timeout=30, heartbeat=0.2, dead_after=0.5):
                entered = time.monotonic()
                time.sleep(1)
                spans.append((entered, time.monotonic()))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=wait_and_hold, args=(f"w{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    spans.sort()
    assert len(spans) == 3
    assert all(earlier[1] <= later[0] for earlier, later in zip(spans, spans[1:], strict=False)), spans
    assert len(broken_locks(client)) == 1  # the dead lock was broken once


def test_concurrent_monitoring_runs_inside_one_cooldown_request_one_retraining(target) -> None:
    from airflow_mlc.core.retrain import decide_and_record

    client = target.activate()
    experiment_id = tracking.ensure_experiment(client, "m/monitoring", target.artifact_location)
    days = ["2011-03-20", "2011-03-21", "2011-03-22", "2011-03-23"]  # a backfill: one run per day
    monitoring_runs = [
        tracking.get_or_create_run(
            client,
            experiment_id,
            {tracking.TAG_KIND: tracking.KIND_MONITORING, tracking.TAG_MODEL: "m", tracking.TAG_RUN_ID: f"bf_{day}"},
            {tracking.TAG_WINDOW_START: f"{day}T00:00:00+00:00", tracking.TAG_WINDOW_END: f"{day}T00:00:00+00:00"},
        )
        for day in days
    ]

    def decide(i: int):
        window = {"start": f"2011-02-{20 + i}T00:00:00+00:00", "end": f"{days[i]}T00:00:00+00:00"}
        return decide_and_record(
            target.activate(), "m", "m/monitoring", monitoring_runs[i], f"bf_{days[i]}", ["data drift"], window, 14
        )

    decisions = at_once(len(days), decide)

    assert sum(d.request for d in decisions) == 1
    assert sum("within the cooldown" in d.reason for d in decisions) == 3
    recorded = [client.get_run(run_id).data.tags[tracking.TAG_RETRAIN_REQUESTED] for run_id in monitoring_runs]
    assert sorted(recorded) == ["false", "false", "false", "true"]
    assert client.search_registered_models(f"name = 'm.retrain-requests{LOCK_SUFFIX}'") == []  # released
