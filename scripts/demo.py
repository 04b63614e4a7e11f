"""The demo: train the bike-rental model on winter 2011 through the real Airflow task runner.

Run by ``make demo``; AIRFLOW_HOME is set by the Makefile (default: .mlc/airflow in the checkout).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAG_ID = "mlc_bikes_train"
WINTER = {"window_start": "2011-01-01", "window_end": "2011-04-01"}


def airflow(*args: str, log: Path) -> None:
    """Run an airflow CLI command; on failure show the end of its log and stop."""
    command = [str(Path(sys.executable).with_name("airflow")), *args]
    with log.open("w") as out:
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
    if result.returncode != 0:
        print("".join(log.read_text().splitlines(keepends=True)[-40:]))
        sys.exit(f"`airflow {' '.join(args)}` failed; full log: {log}")


def main() -> None:
    home = Path(os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".mlc" / "airflow")))
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    logs = home / "demo-logs"
    logs.mkdir(exist_ok=True)

    print(f"Airflow home: {home}")
    print("Migrating the Airflow metadata DB (SQLite) ...")
    airflow("db", "migrate", log=logs / "db-migrate.log")
    print(f"Running {DAG_ID} on {WINTER['window_start']} .. {WINTER['window_end']} with `airflow dags test` ...")
    airflow("dags", "test", DAG_ID, "-c", json.dumps(WINTER), log=logs / "train.log")
    report(home)


def report(home: Path) -> None:
    from airflow_mlc.core.registry import CHAMPION
    from airflow_mlc.hooks.mlflow import MLflowHook

    target = MLflowHook().get_conn()
    client = target.activate()
    champion = client.get_model_version_by_alias("bikes", CHAMPION)
    run = client.get_run(champion.run_id)
    metrics = {k.removeprefix("eval_"): round(v, 3) for k, v in run.data.metrics.items() if k.startswith("eval_")}
    print()
    print(f"Champion: models:/bikes@champion = version {champion.version} (MLflow run {champion.run_id})")
    print(f"  test metrics: {metrics}")
    print(f"  trained on:   {champion.tags.get('mlc.window_start')} .. {champion.tags.get('mlc.window_end')}")
    print(f"  decision:     {champion.tags.get('mlc.promotion_reason')}")
    print(f"MLflow store:   {target.tracking_uri}")
    print(f"Artifacts:      {home / 'mlc' / 'artifacts'} (snapshots, splits, validation reports)")
    print(f"Task logs:      {home / 'demo-logs' / 'train.log'}")
    print()
    print("Open the MLflow UI:")
    print(f"  .venv/bin/mlflow ui --backend-store-uri {target.tracking_uri} --port 5000")
    print("Open the Airflow UI (user and password are printed by standalone):")
    print(f"  AIRFLOW_HOME={home} AIRFLOW__CORE__DAGS_FOLDER={ROOT / 'dags'} .venv/bin/airflow standalone")


if __name__ == "__main__":
    main()
