"""How fast the Models page answers for a model with a long history.

Builds, in a fresh AIRFLOW_HOME on the embedded stores (SQLite for Airflow and MLflow):
- ``--versions`` model versions (200) carrying the tags the registry step writes, and a champion-move
  record for every promotion and rollback among them;
- ``--monitoring`` monitoring DAG runs (1,000) with their drift (12 columns), quality and retraining
  results in XCom, ``--versions`` training runs and 100 prediction runs;
then asks Airflow's own API app (with the plugin mounted, a signed-in user's token) for the model
page, its JSON and the model list, and prints the median and worst time of each. Goal: under 1 s.

Run: ``make bench-ui`` (or ``python benchmarks/models_page.py --versions 200 --monitoring 1000``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "dags" / "specs" / "bikes.yaml"
COLUMNS = ["temp", "atemp", "hum", "windspeed", "hr", "weathersit", "workingday", "holiday", "weekday"]
START = datetime(2011, 1, 1, tzinfo=timezone.utc)


def prepare_home(home: Path | None = None) -> Path:
    """An AIRFLOW_HOME with a migrated DB (fresh unless ``home`` is given) and a spec folder with the bikes spec."""
    home = home or Path(tempfile.mkdtemp(prefix="mlc-bench-ui-"))
    specs = home / "specs"
    specs.mkdir(exist_ok=True)
    text = SPEC.read_text().replace("../data/", f"{ROOT / 'dags' / 'data'}/")
    (specs / "bikes.yaml").write_text(text)
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "MLC_SPECS_DIR": str(specs),
        }
    )
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True)
    return home


def version_tags(number: int, rng: random.Random) -> dict[str, str]:
    """The tags the train, evaluate and register steps leave on a version (about 25)."""
    end = START + timedelta(days=number)
    score = 40 + rng.random() * 10
    tags = {
        "mlc.dag_id": "mlc_bikes_train",
        "mlc.run_id": f"train_{number}",
        "mlc.task_id": "register",
        "mlc.model": "bikes",
        "mlc.data_fingerprint": f"{rng.getrandbits(64):016x}",
        "mlc.window_start": (end - timedelta(days=90)).isoformat(),
        "mlc.window_end": end.isoformat(),
        "mlc.train_data_uri": f"/data/bikes/train_{number}/train.parquet",
        "mlc.test_data_uri": f"/data/bikes/train_{number}/test.parquet",
        "mlc.model_uri": f"runs:/{number:032x}/model",
        "mlc.split_rule": "time: newest 20 %",
        "mlc.score_metric": "rmse",
        "mlc.score": f"{score:.4f}",
        "mlc.champion_score": f"{score + rng.uniform(-2, 2):.4f}",
        "mlc.compared_with": str(max(number - 1, 1)),
        "mlc.scored_on": "the candidate's test rows the champion never trained on",
        "mlc.scored_rows": "412",
        "mlc.improvement": f"{rng.uniform(-2, 2):.4f}",
        "mlc.improvement_ci_low": f"{rng.uniform(-3, 0):.4f}",
        "mlc.improvement_ci_high": f"{rng.uniform(0, 3):.4f}",
        "mlc.confidence": "0.95",
        "mlc.gate_passed": str(number % 3 != 0).lower(),
        "mlc.promoted": str(number % 4 == 1).lower(),
        "mlc.promotion_reason": "gates passed: " + "improvement over the champion; " * 4,
        "mlc.decided_at": end.isoformat(),
    }
    if number % 5 == 0:
        tags["mlc.triggered_by"] = json.dumps({"reason": "drift in temp", "source_run_id": f"monitor_{number}"})
    return tags


def build_registry(versions: int) -> None:
    """``versions`` versions of ``bikes`` and a move record for every promotion and every 20th version's rollback."""
    from airflow_mlc.core import tracking
    from airflow_mlc.core.registry import MoveLog
    from airflow_mlc.hooks.mlflow import airflow_home
    from airflow_mlc.spec import load_spec

    spec = load_spec(Path(os.environ["MLC_SPECS_DIR"]) / "bikes.yaml")
    target = tracking.embedded_target(airflow_home())
    client = target.activate()
    rng = random.Random(0)
    experiment = tracking.ensure_experiment(client, spec.experiment_name, target.artifact_location)
    moves = tracking.ensure_experiment(client, spec.registry_experiment_name, target.artifact_location)
    client.create_registered_model(spec.registered_model_name)
    champion = None
    for number in range(1, versions + 1):
        run = client.create_run(experiment)
        tags = version_tags(number, rng)
        client.create_model_version(spec.registered_model_name, f"runs:/{run.info.run_id}/model", run.info.run_id, tags)
        log = MoveLog(moves, {"mlc.dag_id": "mlc_bikes_train", "mlc.run_id": f"train_{number}"}, "airflow")
        if tags["mlc.promoted"] == "true":
            log.record(client, spec.registered_model_name, "promotion", champion, str(number), "gates passed")
            champion = str(number)
        elif number % 20 == 0 and champion:
            log.record(client, spec.registered_model_name, "rollback", champion, str(number - 1), "a bad week")
    client.set_registered_model_alias(spec.registered_model_name, "champion", champion or "1")
    client.set_registered_model_alias(spec.registered_model_name, "challenger", str(versions))


def drift_result(end: datetime, rng: random.Random) -> dict[str, Any]:
    columns = [
        {"column": c, "method": "wasserstein", "threshold": 0.1, "score": rng.random() * 0.2, "drifted": False}
        for c in COLUMNS
    ]
    for column in columns:
        column["drifted"] = column["score"] > 0.1
    share = sum(c["drifted"] for c in columns) / len(columns)
    return {
        "drift_detected": share >= 0.5,
        "drifted_share": share,
        "drift_share_threshold": 0.5,
        "drifted_columns": {c["column"]: c["score"] for c in columns if c["drifted"]},
        "columns": columns,
        "reference_rows": 2000,
        "current_rows": 672,
        "report_uri": f"/artifacts/bikes/monitor/{end:%Y%m%d}/drift.html",
        "window": {"start": (end - timedelta(days=28)).isoformat(), "end": end.isoformat()},
        "champion_version": "1",
        "monitoring_run_id": f"{rng.getrandbits(128):032x}",
    }


def quality_result(rng: random.Random) -> dict[str, Any]:
    value = 45 + rng.random() * 15
    return {
        "labelled_rows": 672,
        "metric": "rmse",
        "live_metrics": {"rmse": value, "mae": value * 0.7, "r2": 0.8},
        "baseline": 45.0,
        "degradation": value / 45 - 1,
        "tolerance": 0.2,
        "degraded": value > 54,
        "interval": [value - 3, value + 3],
        "confidence": 0.95,
        "reason": "within tolerance",
        "champion_version": "1",
    }


def build_runs(versions: int, monitoring: int, predictions: int) -> None:
    """DAG runs of the model's DAGs with the XCom results their tasks leave."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.models.dagbag import DBDagBag
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]), "dags-folder", None)
    rng = random.Random(1)
    plan: list[tuple[str, str, datetime, dict[str, Any]]] = []
    for number in range(1, monitoring + 1):
        end = START + timedelta(hours=6 * number)
        decision = {"requested": number % 7 == 0, "reason": "drift in temp" if number % 7 == 0 else "no signal"}
        results = {
            ("drift", "return_value"): drift_result(end, rng),
            ("quality", "return_value"): quality_result(rng),
            ("request_retraining", "decision"): decision,
        }
        plan.append(("mlc_bikes_monitor", f"monitor_{number}", end, results))
    for number in range(1, versions + 1):
        result = {"model": "bikes", "version": str(number), "promoted": number % 4 == 1, "reason": "gates passed"}
        plan.append(
            (
                "mlc_bikes_train",
                f"train_{number}",
                START + timedelta(days=number),
                {("register", "return_value"): result},
            )
        )
    for number in range(1, predictions + 1):
        start = START + timedelta(days=number)
        stats = {
            "rows": 168,
            "seconds": 0.2,
            "mean": 180.0,
            "std": 60.0,
            "min": 0,
            "p05": 20,
            "p50": 170,
            "p95": 400,
            "max": 900,
        }
        window = {"start": start.isoformat(), "end": (start + timedelta(days=7)).isoformat()}
        result = {
            "uri": f"/predictions/{number}.parquet",
            "rows": 168,
            "model_version": "1",
            "window": window,
            "stats": stats,
        }
        plan.append(("mlc_bikes_predict", f"predict_{number}", start, {("predict", "return_value"): result}))

    bag = DBDagBag()
    with create_session() as session:
        dags = {dag_id: bag.get_latest_version_of_dag(dag_id, session=session) for dag_id, *_ in plan}
        for dag_id, run_id, moment, results in plan:
            dags[dag_id].create_dagrun(
                run_id=run_id,
                logical_date=moment,
                data_interval=None,
                run_after=moment,
                conf={},
                run_type=DagRunType.SCHEDULED,
                triggered_by=DagRunTriggeredByType.TIMETABLE,
                state=DagRunState.SUCCESS,
                session=session,
            )
            session.flush()
            for (task_id, key), value in results.items():  # stored as JSON, as the task execution API does
                XComModel.set(
                    key, value, dag_id=dag_id, task_id=task_id, run_id=run_id, serialize=False, session=session
                )
        session.commit()


def timed(client: Any, path: str, token: str, repeat: int) -> tuple[list[float], int]:
    """Seconds per GET of ``path`` and the response size."""
    seconds, size = [], 0
    for _ in range(repeat):
        began = time.perf_counter()
        response = client.get(path, headers={"Authorization": f"Bearer {token}"})
        seconds.append(time.perf_counter() - began)
        response.raise_for_status()
        size = len(response.content)
    return seconds, size


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=200)
    parser.add_argument("--monitoring", type=int, default=1000)
    parser.add_argument("--predictions", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--home", type=Path, help="keep the history in this folder; reuse it when it exists")
    args = parser.parse_args(argv)
    built = args.home is not None and (args.home / "airflow.db").exists()
    home = prepare_home(args.home)
    try:
        began = time.perf_counter()
        if not built:
            build_registry(args.versions)
            build_runs(args.versions, args.monitoring, args.predictions)
        print(
            f"History: {args.versions} versions, {args.monitoring} monitoring runs, {args.versions} training runs, "
            f"{args.predictions} prediction runs (built in {time.perf_counter() - began:.0f} s)"
        )
        from airflow.api_fastapi.app import create_app, get_auth_manager
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
        from fastapi.testclient import TestClient

        client = TestClient(create_app())
        token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
        # The API server's first request to the page imports MLflow and opens its store: once per worker.
        (warm_up,), _ = timed(client, "/mlc/", token, 1)
        print(f"First request of the API server process (imports MLflow, opens the store): {warm_up:.1f} s")
        print(f"{'page':<28}{'best':>9}{'median':>9}{'worst':>9}{'size':>10}")
        for path in ("/mlc/models/bikes", "/mlc/api/models/bikes", "/mlc/"):
            seconds, size = timed(client, path, token, args.repeat)
            print(
                f"{path:<28}{min(seconds):>8.3f}s{statistics.median(seconds):>8.3f}s{max(seconds):>8.3f}s"
                f"{size / 1024:>8.0f}kB"
            )
        print("Goal: the model page under 1 s.")
    finally:
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
