"""Task start-up: the bike training DAG under a real scheduler against a hand-written script doing the same work.

In one run, all under the same load:

(a) ``mlc_bikes_train`` of the shipped ``dags/specs/bikes.yaml`` (embedded MLflow on SQLite under the
    Airflow home, artifacts in local folders), run by ``airflow scheduler`` (one process per task),
    ``airflow dag-processor`` and ``airflow api-server`` (the task runners' execution API) on a free
    loopback port; twice, a deployment each: with Airflow's LocalExecutor, and with the provider's
    ``PreloadingLocalExecutor``, which loads the phases' libraries before it forks its workers. The
    metadata DB is SQLite (Airflow 3.3 accepts it with the LocalExecutor) or, with ``--postgres``, a
    fresh ``mlc_bench_<random>`` database on 127.0.0.1:5432 (dropped afterwards). One run is triggered
    with the winter window; its time is the DAG run's ``queued_at`` to ``end_date``, and each task's
    ``start_date`` to ``end_date`` is printed, with the memory (PSS) of the scheduler and its workers.
(b) A hand-written script (no Airflow) doing the same work in one process: read the CSV window, time
    split, the spec's pipeline and search, MLflow logging and model registration; timed as a subprocess.
(c) Start-up costs, each in a fresh interpreter after ``import airflow.sdk`` (as a task process has it):
    what each phase's ``execute`` imports, the DAG file's parse, and the monitoring run's fixed cost
    (imports, spec, MLflow client set-up and the first registry call, before the first byte of work),
    also after an untimed preload, as a task forked by the ``PreloadingLocalExecutor`` has it.

Every Python process gets a private bytecode cache (``PYTHONPYCACHEPREFIX`` in the work folder), warmed
before anything is timed, as a deployed image has compiled bytecode. Native thread pools are limited to
``--threads`` (default 1) on both sides through ``OMP_NUM_THREADS`` and friends, so the comparison is
not about threads. Processes (whole process groups: SIGTERM, then SIGKILL) and folders are cleaned up
even on failure. Run with ``.venv/bin/python benchmarks/task_startup.py [--postgres] [--keep]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.integration.stack import airflow_env as deployment_env  # noqa: E402
from tests.integration.stack import free_port, wait_for  # noqa: E402

BIN = Path(sys.executable).parent
SPEC = ROOT / "dags" / "specs" / "bikes.yaml"
DAG_ID = "mlc_bikes_train"
WINDOW = {"window_start": "2011-01-01", "window_end": "2011-04-01"}
POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432"
RATIO_GOAL = 1.5
MONITORING_GOAL = 2.0
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
#: The executors the DAG run is timed under, side by side (tests.integration.stack.EXECUTORS): Airflow's, and
#: the provider's, which preloads the phases' libraries before it forks its workers.
EXECUTORS = ("LocalExecutor", "PreloadingLocalExecutor")

#: What each phase's ``execute`` imports, the libraries it uses included, in the order it imports them.
PHASE_IMPORTS = {
    "ingest": ["airflow_mlc.operators.ingest", "airflow_mlc.core.ingest", "airflow_mlc.hooks.storage"],
    "validate": [
        "airflow_mlc.operators.validate",
        "airflow_mlc.core.storage",
        "airflow_mlc.core.validate",
        "evidently",
        "evidently.metrics",
        "evidently.tests",
    ],
    "prepare": ["airflow_mlc.operators.prepare", "airflow_mlc.core.prepare"],
    "train": [
        "airflow_mlc.operators.train",
        "airflow_mlc.core.storage",
        "airflow_mlc.core.train",
        "mlflow",
        "sklearn.ensemble",
        "sklearn.model_selection",
        "sklearn.compose",
        "sklearn.impute",
        "sklearn.preprocessing",
        "mlflow.data.pandas_dataset",
        "mlflow.models",
        "mlflow.sklearn",
        "skops.io",
    ],
    "evaluate": [
        "airflow_mlc.operators.evaluate",
        "airflow_mlc.core.evaluate",
        "mlflow",
        "sklearn.dummy",
        "mlflow.sklearn",
        "skops.io",
    ],
    "register": ["airflow_mlc.operators.register", "airflow_mlc.core.evaluate", "airflow_mlc.core.registry", "mlflow"],
    "drift": [
        "airflow_mlc.operators.monitor",
        "airflow_mlc.core.drift",
        "airflow_mlc.core.storage",
        "mlflow",
        "evidently",
        "evidently.presets",
    ],
    "quality": [
        "airflow_mlc.operators.monitor",
        "airflow_mlc.core.drift",
        "airflow_mlc.core.storage",
        "mlflow",
        "mlflow.sklearn",
        "skops.io",
        "evidently",
        "evidently.presets",
    ],
    "predict": [
        "airflow_mlc.operators.predict",
        "airflow_mlc.core.predict",
        "airflow_mlc.core.storage",
        "mlflow",
        "mlflow.pyfunc",
        "skops.io",
    ],
}
#: Libraries whose import is the report itself, not start-up: a monitoring task imports them to build it.
REPORT_LIBRARIES = ("evidently",)


# Processes and folders ------------------------------------------------------------------------------------


class Server:
    """An Airflow component in its own process group, logging to a file; ``stop()`` ends the whole group."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.log = name, log
        with log.open("ab") as out:
            self.popen = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{tail}")

    def stop(self) -> None:
        for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(grace)
                break
        with contextlib.suppress(ProcessLookupError):  # children that outlived the group leader
            os.killpg(self.popen.pid, signal.SIGKILL)


def run(argv: list[str], env: dict[str, str], timeout: float = 900) -> str:
    """Run a command; fail with its output."""
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def base_env(workdir: Path, threads: int) -> dict[str, str]:
    """The environment of every process: a warm private bytecode cache and the native thread limit."""
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(workdir / "probe-home"),  # the measurements' own; the DAG run gets another
        "PYTHONPYCACHEPREFIX": str(workdir / "pycache"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
    env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    for name in ("MLC_SPECS_DIR", "MLC_ARTIFACT_ROOT", "AIRFLOW__CORE__UNIT_TEST_MODE"):
        env.pop(name, None)
    return env


def airflow_env(env: dict[str, str], home: Path, database_url: str, api_port: int, executor: str) -> dict[str, str]:
    """The integration tier's deployment configuration (``executor``), with this benchmark's threads and cache."""
    shared = deployment_env(home, database_url, api_port, ROOT / "dags" / "specs", executor, None, "default")
    shared.update({name: env[name] for name in (*THREAD_VARIABLES, "PYTHONPYCACHEPREFIX")})
    shared.pop("PYTHONDONTWRITEBYTECODE", None)
    return shared


@contextlib.contextmanager
def metadata_database(stack: contextlib.ExitStack, home: Path, postgres: bool) -> Iterator[str]:
    """The SQLAlchemy URL of a new metadata DB: SQLite in ``home``, or a PostgreSQL database dropped at the end."""
    if not postgres:
        yield f"sqlite:///{home / 'airflow.db'}"
        return
    import sqlalchemy

    name = f"mlc_bench_{secrets.token_hex(4)}"
    admin = sqlalchemy.create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# (a) the DAG under a scheduler -----------------------------------------------------------------------------


def moment(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def dag_run_under_scheduler(workdir: Path, env: dict[str, str], postgres: bool, executor: str) -> dict[str, Any]:
    """Trigger one run of the training DAG under a real scheduler; its duration and its tasks' durations."""
    import sqlalchemy

    home = workdir / "airflow"
    home.mkdir(parents=True)
    (home / "passwords.json").write_text(json.dumps({"admin": secrets.token_urlsafe(12)}))
    api_port = free_port()
    airflow = str(BIN / "airflow")
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(metadata_database(stack, home, postgres))
        aenv = airflow_env(env, home, database_url, api_port, executor)
        run([airflow, "db", "migrate"], aenv)
        commands = {
            "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(api_port)],
            "scheduler": ["scheduler"],
            "dag-processor": ["dag-processor"],
        }
        servers = []
        for name, args in commands.items():
            server = Server(name, [airflow, *args], aenv, workdir / f"{name}.log")
            stack.callback(server.stop)
            servers.append(server)
        engine = sqlalchemy.create_engine(database_url)
        stack.callback(engine.dispose)

        def query(sql: str, **params: Any) -> list[Any]:
            for server in servers:
                server.check_alive()
            with engine.connect() as connection:
                return list(connection.execute(sqlalchemy.text(sql), params))

        wait_for(lambda: query("select 1 from dag where dag_id = :d", d=DAG_ID), 300, f"{DAG_ID} to be parsed")
        # A long-running API server has built its execution API (a few seconds, on its first request) long before
        # a run: build it now, so that the first task does not pay for it.
        wait_for(lambda: execution_api_ready(api_port), 120, "the execution API")
        run([airflow, "dags", "unpause", DAG_ID], aenv)
        run([airflow, "dags", "trigger", DAG_ID, "--conf", json.dumps(WINDOW)], aenv)
        (run_id,) = wait_for(lambda: query("select run_id from dag_run where dag_id = :d", d=DAG_ID), 60, "the run")[0]
        finished = "select state, queued_at, start_date, end_date from dag_run where dag_id = :d and run_id = :r"
        state, queued_at, started_at, ended_at = wait_for(
            lambda: [row for row in query(finished, d=DAG_ID, r=run_id) if row[0] in ("success", "failed")],
            900,
            "the run to finish",
        )[0]
        scheduler_memory = process_tree_memory(servers[1].popen.pid)
        tasks = query(
            "select task_id, state, start_date, end_date from task_instance where dag_id = :d and run_id = :r "
            "order by start_date",
            d=DAG_ID,
            r=run_id,
        )
        if state != "success":
            logs = sorted((home / "logs").glob("dag_id=*/**/*.log"))
            tails = "\n".join(f"--- {log}\n{log.read_text(errors='replace')[-3000:]}" for log in logs)
            raise RuntimeError(f"the run ended {state}; task states {[(t[0], t[1]) for t in tasks]}\n{tails}")
        return {
            "seconds": (moment(ended_at) - moment(queued_at)).total_seconds(),
            "queued_to_start": (moment(started_at) - moment(queued_at)).total_seconds(),
            "tasks": [
                (task_id, (moment(end) - moment(start)).total_seconds()) for task_id, _, start, end in tasks if start
            ],
            "home": home,
            "scheduler_memory": scheduler_memory,
        }


def process_tree_memory(pid: int) -> tuple[int, float]:
    """The number of processes in ``pid``'s tree and their proportional set size (shared pages split), in MB."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending.extend(children.get(current, []))
    pss_kb = 0
    for member in tree:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss_kb += int(line.split()[1])
    return len(tree), pss_kb / 1024


def execution_api_ready(api_port: int) -> bool:
    """Whether the API server's execution API answers (its first request builds it)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/execution/health", timeout=30) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


# (b) the hand-written script -------------------------------------------------------------------------------


def hand_written(folder: str) -> None:
    """The training DAG's work written by hand in one process: window, split, pipeline, search, MLflow."""
    import mlflow
    import pandas as pd
    import skops.io
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error
    from sklearn.model_selection import RandomizedSearchCV, TimeSeriesSplit
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = ["temp", "atemp", "hum", "windspeed", "hr"]
    categorical = ["weathersit", "workingday", "holiday", "weekday"]
    frame = pd.read_csv(SPEC.parent / "../data/bikeshare_hourly_2011.csv")
    times = pd.to_datetime(frame["timestamp"])
    frame = frame[(times >= WINDOW["window_start"]) & (times < WINDOW["window_end"])].sort_values("timestamp")
    frame = frame.dropna(subset=["bikers"])
    cut = int(len(frame) * 0.8)
    train, test = frame.iloc[:cut], frame.iloc[cut:]
    features = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [
                        (
                            "numeric",
                            Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
                            numeric,
                        ),
                        (
                            "categorical",
                            Pipeline(
                                [
                                    ("impute", SimpleImputer(strategy="most_frequent")),
                                    ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                                ]
                            ),
                            categorical,
                        ),
                    ]
                ),
            ),
            ("model", HistGradientBoostingRegressor(max_iter=200, random_state=0)),
        ]
    )
    search = RandomizedSearchCV(
        features,
        {"model__learning_rate": [0.03, 0.1, 0.3], "model__max_leaf_nodes": [15, 31]},
        n_iter=4,
        cv=TimeSeriesSplit(n_splits=3),
        scoring="neg_root_mean_squared_error",
        random_state=42,
    )
    x_train, x_test = train[numeric + categorical], test[numeric + categorical]
    search.fit(x_train, train["bikers"])
    model = search.best_estimator_
    predicted = model.predict(x_test)
    metrics = {
        "test_rmse": root_mean_squared_error(test["bikers"], predicted),
        "test_mae": mean_absolute_error(test["bikers"], predicted),
        "test_r2": r2_score(test["bikers"], predicted),
    }
    uri = f"sqlite:///{folder}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = mlflow.MlflowClient()
    experiment_id = client.create_experiment("bikes", artifact_location=Path(folder, "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment_id):
        mlflow.log_params({f"best.{k}": v for k, v in search.best_params_.items()})
        mlflow.log_metric("cv_score", -search.best_score_)
        mlflow.log_metrics(metrics)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(x_test.head(100), predicted[:100]),
            input_example=x_test.head(5),
            serialization_format="skops",
            skops_trusted_types=list(skops.io.get_untrusted_types(data=skops.io.dumps(model))),
            pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_skops=True),
        )
    version = mlflow.register_model(info.model_uri, "bikes").version
    client.set_registered_model_alias("bikes", "champion", version)


def time_hand_written(workdir: Path, env: dict[str, str]) -> float:
    folder = workdir / "script"
    folder.mkdir()
    started = time.perf_counter()
    run([sys.executable, __file__, "--hand-written", str(folder)], env)
    return time.perf_counter() - started


# (c) start-up costs in fresh interpreters ------------------------------------------------------------------


def import_costs(modules: list[str]) -> dict[str, float]:
    """In this fresh interpreter, after ``import airflow.sdk``: seconds to import each of ``modules`` in turn."""
    import importlib
    import warnings

    import airflow.sdk  # noqa: F401 - what every task process has imported already

    costs = {}
    for name in modules:
        started = time.perf_counter()
        if name == "skops.io":  # as the product imports it (airflow_mlc.core.skops_import)
            from airflow_mlc.core.skops_import import import_skops

            import_skops()
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                importlib.import_module(name)
        costs[name] = time.perf_counter() - started
    return costs


def dag_file_parse() -> dict[str, float]:
    """In this fresh interpreter, after ``import airflow.sdk``: seconds to parse ``dags/mlc_dags.py``."""
    import runpy

    import airflow.sdk  # noqa: F401

    started = time.perf_counter()
    runpy.run_path(str(ROOT / "dags" / "mlc_dags.py"))
    return {"dags/mlc_dags.py": time.perf_counter() - started}


def monitoring_fixed_cost(home: str, preloaded: bool = False) -> dict[str, float]:
    """A monitoring task's fixed cost after ``import airflow.sdk``, up to its first byte of work.

    The imports the drift task makes before it reads data (its operator module, the drift core, storage,
    MLflow), the spec, and the MLflow client with its first registry call (the champion), against the
    store the training run filled. With ``preloaded``, after an untimed ``preload()``, as in a task process
    the PreloadingLocalExecutor forks.
    """
    import airflow.sdk  # noqa: F401

    if preloaded:
        from airflow_mlc.core.preload import preload

        preload()

    costs: dict[str, float] = {}
    started = time.perf_counter()
    from airflow_mlc.core import drift, storage  # noqa: F401
    from airflow_mlc.core.registry import CHAMPION, version_by_alias
    from airflow_mlc.core.tracking import embedded_target
    from airflow_mlc.operators import monitor  # noqa: F401

    costs["imports: operator, core"] = time.perf_counter() - started
    started = time.perf_counter()
    import mlflow  # noqa: F401

    costs["imports: mlflow"] = time.perf_counter() - started
    started = time.perf_counter()
    from airflow_mlc.spec import load_spec

    spec = load_spec(SPEC)
    costs["spec"] = time.perf_counter() - started
    started = time.perf_counter()
    client = embedded_target(home).activate()
    champion = version_by_alias(client, spec.registered_model_name, CHAMPION)
    costs["MLflow client + champion lookup"] = time.perf_counter() - started
    assert champion is not None, "the training run registered no champion"
    return costs


def in_child(env: dict[str, str], function: str, argument: str) -> dict[str, float]:
    """Run one of the measurements above in a fresh interpreter; returns what it measured."""
    output = run([sys.executable, __file__, "--measure", function, argument], env)
    return dict(json.loads(output.strip().splitlines()[-1]))


def warm_bytecode(env: dict[str, str]) -> None:
    """Import everything once so every timed process reads compiled bytecode from the private cache."""
    every = sorted({name for modules in PHASE_IMPORTS.values() for name in modules})
    in_child(env, "import_costs", json.dumps(every))
    in_child(env, "dag_file_parse", "")
    run([str(BIN / "airflow"), "version"], env)


# The report ------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", action="store_true", help="a PostgreSQL metadata DB instead of SQLite")
    parser.add_argument("--threads", type=int, default=1, help="native threads of every process (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, homes)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="mlc-bench-startup-"))
    try:
        env = base_env(workdir, args.threads)
        print(f"Work folder {workdir}; warming the bytecode cache ...", flush=True)
        warm_bytecode(env)

        print("\nStart-up per phase: seconds to import what execute imports, after `import airflow.sdk`")
        for phase, modules in PHASE_IMPORTS.items():
            costs = in_child(env, "import_costs", json.dumps(modules))
            report = sum(seconds for name, seconds in costs.items() if name.split(".")[0] in REPORT_LIBRARIES)
            heavy = ", ".join(f"{name} {seconds:.2f}" for name, seconds in costs.items() if seconds >= 0.05)
            print(f"  {phase:<9} {sum(costs.values()):5.2f} s  (report library {report:.2f} s)  {heavy}")
        parse = in_child(env, "dag_file_parse", "")["dags/mlc_dags.py"]
        sdk_started = time.perf_counter()
        run([sys.executable, "-c", "import airflow.sdk"], env)
        sdk = time.perf_counter() - sdk_started
        print(f"  every task: interpreter + `import airflow.sdk` {sdk:.2f} s; parse of dags/mlc_dags.py {parse:.2f} s")

        runs = {}
        for executor in EXECUTORS:
            print(f"\n(a) {DAG_ID} under the scheduler ({executor}, {'PostgreSQL' if args.postgres else 'SQLite'}) ...")
            runs[executor] = dag_run_under_scheduler(workdir / executor, env, args.postgres, executor)
        print("(b) the hand-written script ...", flush=True)
        script = time_hand_written(workdir, env)

        for executor, dag_run in runs.items():
            tasks = dag_run["tasks"]
            in_tasks = sum(seconds for _, seconds in tasks)
            print(f"\n(a) {executor}: DAG run, trigger to success: {dag_run['seconds']:6.2f} s")
            for task_id, seconds in tasks:
                print(f"      {task_id:<10} {seconds:6.2f} s")
            print(
                f"      in tasks {in_tasks:.2f} s; queued to running {dag_run['queued_to_start']:.2f} s; "
                f"between tasks {dag_run['seconds'] - in_tasks - dag_run['queued_to_start']:.2f} s"
            )
            processes, pss = dag_run["scheduler_memory"]
            print(f"      the scheduler and its workers after the run: {processes} processes, PSS {pss:.0f} MB")
        print(f"(b) hand-written script: {script:6.2f} s")
        for executor, dag_run in runs.items():
            ratio = dag_run["seconds"] / script
            verdict = "met" if ratio <= RATIO_GOAL else "NOT met"
            print(f"    ratio (a)/(b), {executor:<24} {ratio:.2f}x  (goal {RATIO_GOAL}x: {verdict})")

        home = str(runs["PreloadingLocalExecutor"]["home"])
        for label, function in (
            ("a fresh task process (LocalExecutor)", "monitoring_fixed_cost"),
            ("a task process forked after the preload (PreloadingLocalExecutor)", "monitoring_fixed_cost_preloaded"),
        ):
            costs = in_child(env, function, home)
            fixed = sum(costs.values())
            print(
                f"\n(c) monitoring task's fixed cost beyond airflow.sdk, {label}: {fixed:.2f} s "
                f"(goal {MONITORING_GOAL} s: {'met' if fixed <= MONITORING_GOAL else 'NOT met'})"
            )
            for name, seconds in costs.items():
                print(f"      {name:<34} {seconds:5.2f} s")
    finally:
        if args.keep:
            print(f"\nKept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--hand-written":
        hand_written(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "--measure":
        function, argument = sys.argv[2], sys.argv[3]
        if function == "import_costs":
            print(json.dumps(import_costs(json.loads(argument))))
        elif function == "dag_file_parse":
            print(json.dumps(dag_file_parse()))
        elif function == "monitoring_fixed_cost_preloaded":
            print(json.dumps(monitoring_fixed_cost(argument, preloaded=True)))
        else:
            print(json.dumps(monitoring_fixed_cost(argument)))
    else:
        main()
