"""The demo: the whole monitoring loop on the 2011 bike-rental data, through the real Airflow task runner.

1. train ``mlc_bikes_train`` on winter (January to March): version 1 becomes champion;
2. monitor a late-winter window (``mlc_bikes_monitor``, ending 2011-04-01): no drift, no retraining;
3. monitor a spring window (ending 2011-05-15): the temperature drifted, the retraining asset event is emitted;
4. run the retraining that event triggers: the spring challenger is scored against the champion on
   the newest labelled rows neither has trained on and promoted only if it wins by the spec's margin
   with a paired bootstrap interval above zero (docs/decisions.md);
5. score the following week with the champion (``mlc_bikes_predict``, chunked batch inference);
6. roll the champion back with a reason (``mlc_bikes_rollback``) and print the history of champion moves.

Run by ``make demo``; AIRFLOW_HOME is set by the Makefile (default: .mlc/airflow in the checkout).
Each step runs in its own process with its output in ``$AIRFLOW_HOME/demo-logs``; each task's log is in
``$AIRFLOW_HOME/logs``, where the Airflow UI (``make ui``) shows it. Tasks are printed as they finish.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODEL = "bikes"
WINTER = {"window_start": "2011-01-01", "window_end": "2011-04-01"}
NEXT_WEEK = {"window_start": "2011-05-15", "window_end": "2011-05-22"}
MARKER = ".mlc-demo"


def prepare_home() -> Path:
    """The demo's AIRFLOW_HOME, emptied of an earlier demo's state so every demo starts the same way."""
    home = Path(os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".mlc" / "airflow")))
    if (home / MARKER).exists():
        for leftover in ("airflow.db", "mlflow", "mlc", "demo-logs", "logs"):
            path = home / leftover
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    elif home.exists() and any(home.iterdir()):
        sys.exit(f"{home} is not a demo home (no {MARKER} file): choose an empty folder with DEMO_HOME=...")
    home.mkdir(parents=True, exist_ok=True)
    (home / MARKER).touch()
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    (home / "demo-logs").mkdir(exist_ok=True)
    return home


def step(name: str, *arguments: str) -> Any:
    """Run one demo step in a child process, its output in a log; returns the finished run (dag_id, run_id).

    Each task is printed as it finishes (the child appends it to the step's progress file), and the tasks
    the run skipped without running them once it ended.
    """
    from airflow_mlc.testing import task_states

    log = Path(os.environ["AIRFLOW_HOME"]) / "demo-logs" / f"{name}.log"
    result_file = log.with_suffix(".json")
    command = [sys.executable, __file__, "--step", str(result_file), *arguments]
    with log.open("w") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
        printed = follow(child, log.with_suffix(".progress"))
    if child.returncode != 0 or not result_file.exists():
        print("".join(log.read_text().splitlines(keepends=True)[-40:]))
        sys.exit(f"demo step {name!r} failed; full log: {log}")
    run = SimpleNamespace(**json.loads(result_file.read_text()))
    if run.dag_id:
        for task_id, state in task_states(run).items():
            if task_id not in printed:
                print_task(task_id, state)
    if run.state != "success":
        sys.exit(f"demo step {name!r}: the run ended {run.state}; full log: {log}")
    return run


def follow(child: subprocess.Popen[bytes], progress: Path) -> set[str]:
    """Print the tasks the child reports in ``progress`` until it exits; returns the ids of those printed."""
    printed: set[str] = set()
    seen = 0
    while True:
        running = child.poll() is None
        text = progress.read_text() if progress.exists() else ""
        complete = text[seen : text.rfind("\n") + 1]  # whole lines only: the child may be mid-write
        seen += len(complete)
        for line in complete.splitlines():
            task_id, state, seconds = line.split("\t")
            print_task(task_id, state, float(seconds))
            printed.add(task_id.split("[")[0])
        if not running:
            return printed
        time.sleep(0.5)


def print_task(task_id: str, state: str, seconds: float | None = None) -> None:
    took = f" ({seconds:.1f} s)" if seconds is not None else ""
    print(f"   {task_id} {'.' * max(3, 24 - len(task_id))} {state}{took}", flush=True)


def progress_reporter(result_file: str) -> Callable[[Any, float], None]:
    """In the child: the ``on_task_end`` callback that appends each finished task to the progress file."""
    progress = Path(result_file).with_suffix(".progress")

    def report(ti: Any, seconds: float) -> None:
        label = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        with progress.open("a") as out:
            out.write(f"{label}\t{getattr(ti.state, 'value', ti.state)}\t{seconds:.1f}\n")

    return report


def run_step(result_file: str, kind: str, argument: str) -> None:
    """In the child: migrate on first use, run one DAG, write its (dag_id, run_id, state)."""
    from airflow_mlc.testing import asset_event_ids, run_dag

    report = progress_reporter(result_file)
    if kind == "migrate":
        subprocess.run([str(Path(sys.executable).with_name("airflow")), "db", "migrate"], check=True)
        run = SimpleNamespace(dag_id="", run_id="", state="success")
    elif kind == "train":
        run = run_dag(f"mlc_{MODEL}_train", conf=json.loads(argument), on_task_end=report)
    elif kind == "monitor":
        run = run_dag(f"mlc_{MODEL}_monitor", conf={"window_end": argument}, on_task_end=report)
    elif kind == "predict":
        run = run_dag(f"mlc_{MODEL}_predict", conf=json.loads(argument), on_task_end=report)
    elif kind == "rollback":
        run = run_dag(f"mlc_{MODEL}_rollback", conf={"reason": argument}, on_task_end=report)
    else:  # retrain: the training run the monitoring run's asset event starts
        events = asset_event_ids(f"mlc://{MODEL}/retrain", source_run_id=argument)
        run = run_dag(f"mlc_{MODEL}_train", triggering_events=events, on_task_end=report)
    Path(result_file).write_text(json.dumps({"dag_id": run.dag_id, "run_id": run.run_id, "state": str(run.state)}))


def main() -> None:
    from airflow_mlc.testing import task_result, task_states

    home = prepare_home()
    print(f"Airflow home: {home}")
    print("Migrating the Airflow metadata DB (SQLite) ...")
    step("db-migrate", "migrate", "")

    print(f"\n1. Training on winter: {WINTER['window_start']} .. {WINTER['window_end']}")
    train = step("1-train-winter", "train", json.dumps(WINTER))
    decision = task_result(train, "register")
    print(f"   version {decision['version']} promoted: {decision['promoted']} ({decision['reason']})")

    for number, (label, end) in enumerate((("late winter", "2011-04-01"), ("spring", "2011-05-15")), start=2):
        print(f"\n{number}. Monitoring {label}: the 28 days before {end}")
        run = step(f"{number}-monitor-{label.replace(' ', '-')}", "monitor", end)
        drift = task_result(run, "drift")
        quality = task_result(run, "quality")
        print(f"   drift report:    {drift['report_uri']}")
        print(f"   drifted columns: {drift['drifted_columns'] or 'none'} ({drift['drifted_share']:.0%} of the columns)")
        metric = quality["metric"]
        live, baseline, rows = quality["live_metrics"][metric], quality["baseline"], quality["labelled_rows"]
        print(f"   champion's {metric} on {rows} labelled rows: {live:.2f} (evaluation: {baseline:.2f})")
        requested = task_states(run)["request_retraining"] == "success"
        print(f"   retraining requested: {'yes, mlc://bikes/retrain emitted' if requested else 'no'}")
        if requested:
            spring = run

    print("\n4. The retraining started by that asset event")
    retrain = step("4-retrain", "retrain", spring.run_id)
    evaluation = task_result(retrain, "evaluate")
    decision = task_result(retrain, "register")
    metric = evaluation["metric"]
    comparison = evaluation["comparison"]
    print(f"   compared on {evaluation['scored_on']}")
    print(
        f"   challenger {metric}: {comparison['challenger']:.2f}   "
        f"champion (v{evaluation['champion_version']}) {metric}: {comparison['champion']:.2f}"
    )
    print(
        f"   improvement {comparison['improvement']:+.2f}, {comparison['confidence']:.0%} paired bootstrap interval "
        f"[{comparison['low']:+.2f}, {comparison['high']:+.2f}]"
    )
    verdict = "promoted" if decision["promoted"] else "kept as challenger"
    print(f"   decision: {verdict} version {decision['version']}: {evaluation['reasons'][0]}")

    print("\n5. Batch predictions for the week after, with the champion, in chunks")
    predict = step("5-predict", "predict", json.dumps(NEXT_WEEK))
    scored = task_result(predict, "predict")
    stats = scored["stats"]
    print(f"   {scored['rows']} rows scored by version {scored['model_version']} in {stats['seconds']:.2f} s")
    print(f"   predictions: mean {stats['mean']:.1f}, p05 {stats['p05']:.1f}, p95 {stats['p95']:.1f}")
    print(f"   written to {scored['uri']}")

    print("\n6. Rollback, with a reason")
    rollback = step("6-rollback", "rollback", "demo: show a rollback")
    move = task_result(rollback, "rollback")
    print(f"   champion {move['from_version']} -> {move['to_version']} by {move['moved_by']}: {move['reason']}")
    print_history()
    summary(home)


def print_history() -> None:
    from airflow_mlc.core.registry import champion_history
    from airflow_mlc.hooks.mlflow import MLflowHook
    from airflow_mlc.spec import load_spec

    spec = load_spec(ROOT / "dags" / "specs" / f"{MODEL}.yaml")
    client = MLflowHook().get_conn().activate()
    print("   history of champion moves (airflow_mlc.core.registry.champion_history):")
    for move in champion_history(client, spec.registry_experiment_name, spec.registered_model_name):
        print(
            f"     {move.moved_at[:19]}  {move.kind:<9} {move.from_version or '-'} -> {move.to_version}  "
            f"by {move.moved_by}: {move.reason[:70]}"
        )


def summary(home: Path) -> None:
    import ui  # scripts/ui.py, next to this file

    from airflow_mlc.core.registry import CHAMPION
    from airflow_mlc.hooks.mlflow import MLflowHook

    target = MLflowHook().get_conn()
    client = target.activate()
    champion = client.get_model_version_by_alias(MODEL, CHAMPION)
    print(
        f"\nChampion now: models:/{MODEL}@champion = version {champion.version}, "
        f"trained on {champion.tags.get('mlc.window_start')} .. {champion.tags.get('mlc.window_end')}"
    )
    print(f"  triggered by: {champion.tags.get('mlc.triggered_by', 'a manual run')[:160]}")
    print(f"MLflow store:   {target.tracking_uri}")
    print(f"Artifacts:      {home / 'mlc' / 'artifacts'} (snapshots, splits, validation, drift and quality reports)")
    print(f"Task logs:      {home / 'logs'} (steps: {home / 'demo-logs'})")
    print("\nOpen the MLflow UI:")
    print(f"  .venv/bin/mlflow ui --backend-store-uri {target.tracking_uri} --port 5000")
    print("Open the Airflow UI (the demo's runs and task logs) on http://127.0.0.1:8080:")
    default_home = home.resolve() == (ROOT / ".mlc" / "airflow").resolve()
    print("  make ui" if default_home else f"  make ui DEMO_HOME={home}")
    print(f"  and sign in as {ui.USER} / {ui.admin_password(home)}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--step":
        run_step(*sys.argv[2:5])
    else:
        main()
