"""The integration tier's servers, all on loopback: PostgreSQL databases, an S3-compatible server (moto),
an MLflow tracking server and a whole Airflow (API server, scheduler, DAG processor, triggerer, and, when the
executor is Celery, two Celery workers: one for the default queue, one for the training task's heavy queue).

Every piece is registered on an ``ExitStack`` as soon as it exists, so closing the stack stops every process
and drops every database, whatever failed on the way.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests

from tests.conftest import RUN, TEMPLATES_MADE

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/0"
#: The Airflow user the tests sign in as (simple auth manager).
ADMIN = ("admin", "mlc-integration")
#: The moto server accepts any key; these are long enough for Airflow's secret masker.
S3_KEY, S3_SECRET = "mlc-integration-key", "mlc-integration-secret"
#: The buckets of the deployment spec (docker/specs/bikes.yaml) and of the MLflow server's artifacts.
ARTIFACT_BUCKET, MLFLOW_BUCKET = "mlc-artifacts", "mlflow"
#: The Celery worker that serves only the heavy queue, which the deployment spec gives the train task.
HEAVY_WORKER = "heavy-worker"
#: The run's template metadata database, migrated once and copied by every deployment; ``RUN`` is shared by the
#: pytest-xdist workers, and the controller drops the template when the session ends (tests/conftest.py).
AIRFLOW_TEMPLATE = f"mlc_it_tpl_{RUN}_airflow"

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.5) -> T:
    """Call ``check`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(requests.RequestException):
            result = check()
            if result:
                return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def http_ok(url: str) -> bool:
    return requests.get(url, timeout=5).ok


@dataclass
class Timings:
    """When each step of a deployment ended, in seconds since it started (written next to its logs)."""

    started: float = field(default_factory=time.monotonic)
    steps: dict[str, float] = field(default_factory=dict)

    def mark(self, step: str) -> None:
        self.steps[step] = round(time.monotonic() - self.started, 1)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.steps, indent=2))


@dataclass
class Process:
    """A server in its own process group, logging to a file; ``stop()`` ends the whole group."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        with self.log.open("ab") as log:
            self.popen = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def check_alive(self) -> None:
        if self.popen is not None and self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}; its log:\n{tail(self.log)}")

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(grace)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):  # children that outlived their parent
            os.killpg(self.popen.pid, signal.SIGKILL)


def stop_together(processes: list[Process]) -> None:
    """Stop the processes at the same time, not one grace period after another."""
    if processes:
        with concurrent.futures.ThreadPoolExecutor(len(processes)) as pool:
            list(pool.map(Process.stop, processes))


def tail(path: Path, lines: int = 60) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def start(stack: contextlib.ExitStack, process: Process) -> Process:
    process.start()
    stack.callback(process.stop)
    return process


# PostgreSQL --------------------------------------------------------------------------------------------------


def admin_engine() -> Any:
    import sqlalchemy

    return sqlalchemy.create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT")


def create_database(stack: contextlib.ExitStack, name: str) -> str:
    """A new database, dropped (with its connections) when the stack closes. Returns its SQLAlchemy URL."""
    import sqlalchemy

    engine = admin_engine()
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    stack.callback(drop_database, name)
    return f"{POSTGRES}/{name}"


def create_airflow_database(stack: contextlib.ExitStack, name: str, env: Mapping[str, str]) -> str:
    """A new Airflow metadata database, copied from the run's migrated template; returns its SQLAlchemy URL.

    The first deployment of the run migrates the template (``airflow db migrate``, the CPU-heavy part of a
    start-up), every deployment then copies it with ``CREATE DATABASE ... TEMPLATE``, which takes a second. An
    advisory lock makes the pytest-xdist workers wait for each other; the copy is dropped with the stack.
    """
    import sqlalchemy

    with admin_engine().connect() as connection:
        connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": zlib.crc32(RUN.encode())})
        try:
            exists = connection.execute(
                sqlalchemy.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": AIRFLOW_TEMPLATE}
            ).first()
            if not exists:
                migrate_template(connection, env)
            connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}" TEMPLATE "{AIRFLOW_TEMPLATE}"'))
        finally:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock_all()"))
    stack.callback(drop_database, name)
    return f"{POSTGRES}/{name}"


def migrate_template(connection: Any, env: Mapping[str, str]) -> None:
    """Create and migrate the run's template; a failed migration leaves no template behind."""
    import sqlalchemy

    url = f"{POSTGRES}/{AIRFLOW_TEMPLATE}"
    connection.execute(sqlalchemy.text(f'CREATE DATABASE "{AIRFLOW_TEMPLATE}"'))
    TEMPLATES_MADE.touch()
    try:
        argv = [str(BIN / "airflow"), "db", "migrate"]
        migrate_env = {**env, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url}
        done = subprocess.run(argv, env=migrate_env, capture_output=True, text=True, timeout=600)
        if done.returncode:
            raise RuntimeError(f"airflow db migrate failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    except BaseException:
        drop_database(AIRFLOW_TEMPLATE)
        raise


def drop_templates(run: str) -> None:
    """Drop the template databases of the run ``run`` (called once, when the whole session ends)."""
    import sqlalchemy

    with admin_engine().connect() as connection:
        names = connection.execute(
            sqlalchemy.text("SELECT datname FROM pg_database WHERE datname LIKE :pattern"),
            {"pattern": f"mlc\\_it\\_tpl\\_{run}\\_%"},
        ).scalars()
        for name in list(names):
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def drop_database(name: str) -> None:
    import sqlalchemy

    with admin_engine().connect() as connection:
        connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# S3 and MLflow ----------------------------------------------------------------------------------------------


def start_s3(stack: contextlib.ExitStack, logs: Path) -> tuple[Process, str]:
    """Start a moto server; returns it and its endpoint URL. ``s3_ready`` waits for it and makes the buckets."""
    port = free_port()
    server = start(
        stack,
        Process(
            "s3", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], dict(os.environ), logs / "s3.log"
        ),
    )
    return server, f"http://127.0.0.1:{port}"


def s3_ready(server: Process, endpoint: str) -> None:
    """Wait for the moto server, then create the artifact and MLflow buckets."""
    wait_for(lambda: server.check_alive() or http_ok(f"{endpoint}/moto-api/"), 60, "the S3 server")
    client = s3_client(endpoint)
    for bucket in (ARTIFACT_BUCKET, MLFLOW_BUCKET):
        client.create_bucket(Bucket=bucket)


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET
    )


def start_mlflow(stack: contextlib.ExitStack, logs: Path, backend_url: str, s3_endpoint: str) -> tuple[Process, str]:
    """``mlflow server`` with a PostgreSQL backend store, proxying artifacts to S3; returns it and its URL.

    It creates its tables on start, which takes a while: wait for it with ``wait_for_mlflow``.
    """
    port = free_port()
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": S3_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
        # No job runner and its eight Huey consumers (prompt optimisation, trace roll-ups): nothing here uses
        # them, and each would import MLflow on the two shared cores.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    argv = [
        str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", backend_url.replace("+psycopg2", ""),
        "--artifacts-destination", f"s3://{MLFLOW_BUCKET}/artifacts",
    ]  # fmt: skip
    return start(stack, Process("mlflow", argv, env, logs / "mlflow.log")), f"http://127.0.0.1:{port}"


def wait_for_mlflow(server: Process, url: str) -> None:
    wait_for(lambda: server.check_alive() or http_ok(f"{url}/health"), 180, "the MLflow server")


# Airflow ----------------------------------------------------------------------------------------------------


@dataclass
class Airflow:
    """A running Airflow: where it lives, how its processes are configured, and its REST API."""

    home: Path
    env: dict[str, str]
    api_url: str
    processes: list[Process] = field(default_factory=list)

    def cli(self, *args: str) -> str:
        """Run an ``airflow`` command with this Airflow's configuration; fail with its output."""
        done = subprocess.run([str(BIN / "airflow"), *args], env=self.env, capture_output=True, text=True, timeout=600)
        if done.returncode:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done.stdout

    def check_alive(self) -> None:
        for process in self.processes:
            process.check_alive()

    def task_logs(self) -> str:
        """Every task log this Airflow's processes wrote (the scheduler's and a worker's homes)."""
        homes = {self.home, *(Path(p.env["AIRFLOW_HOME"]) for p in self.processes)}
        logs = sorted(log for home in homes for log in (home / "logs").glob("dag_id=*/**/*.log"))
        return "\n".join(f"--- {log.relative_to(log.parents[3])}\n{tail(log, 40)}" for log in logs)


#: The executors a deployment can run, by the name its tests are known by, as the settings that choose them. Both
#: preload the phases' libraries in the processes that fork the task processes, as docs/deployment.md recommends;
#: the browser tier's deployment runs the plain LocalExecutor.
EXECUTORS: dict[str, dict[str, str]] = {
    "LocalExecutor": {"AIRFLOW__CORE__EXECUTOR": "LocalExecutor"},
    "PreloadingLocalExecutor": {"AIRFLOW__CORE__EXECUTOR": "airflow_mlc.executors.local.PreloadingLocalExecutor"},
    "CeleryExecutor": {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "airflow_mlc.executors.celery_config.CELERY_CONFIG",
    },
}


def airflow_env(
    home: Path,
    database_url: str,
    api_port: int,
    specs: Path,
    executor: str,
    broker: str | None,
    queue: str,
    roles: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The configuration shared by every Airflow process of one deployment, as environment variables.

    ``roles`` maps each simple auth manager user to its role; default: ``ADMIN`` alone, as admin. ``extra`` is
    added last (say, a shorter retry delay).
    """
    roles = roles or {ADMIN[0]: "admin"}
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
        **EXECUTORS[executor],
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__FERNET_KEY": fernet_key(),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{user}:{role}" for user, role in roles.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        # Task runners report to the API server's execution API: it must name the port in use.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
        "MLC_SPECS_DIR": str(specs),
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "OMP_NUM_THREADS": "1",  # tasks share two cores with every server: no thread oversubscription
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    env.pop("MLC_ARTIFACT_ROOT", None)
    if broker:
        env["AIRFLOW__CELERY__BROKER_URL"] = broker
        env["AIRFLOW__CELERY__RESULT_BACKEND"] = "db+" + database_url.replace("+psycopg2", "")
    env.update(extra or {})
    return env


#: Read by the DAG processor alone, so not part of the configuration every process shares (``airflow_env``): the
#: DAG files and specs never change during a test run, so they are parsed once, not again every 30 s (each parse
#: imports the provider, on the two cores the tasks need).
DAG_PROCESSOR_ONLY = {"AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600"}


def fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def start_airflow(
    stack: contextlib.ExitStack,
    workdir: Path,
    database: str,
    specs: Path,
    executor: str,
    users: Mapping[str, tuple[str, str]] | None = None,
    wait: bool = True,
    queue: str | None = None,
    heavy_queue: str | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> Airflow:
    """Create the metadata DB ``database`` (a copy of the run's migrated template), then start the API server,
    scheduler, DAG processor, triggerer (and a worker); with ``wait``, wait until they are healthy.

    ``users`` maps each simple auth manager user to its (password, role); default: ``ADMIN`` alone, as admin.
    ``queue`` is the default queue (default: ``mlc-<hex>``, a queue of its own on the shared Redis). With the
    CeleryExecutor, the worker serves only ``queue``, and a second one, ``HEAVY_WORKER``, only ``heavy_queue``.
    ``extra_env`` is added to every process's configuration (``airflow_env``).
    """
    users = users or {ADMIN[0]: (ADMIN[1], "admin")}
    home = workdir / "airflow"
    home.mkdir()
    (home / "passwords.json").write_text(json.dumps({user: password for user, (password, _) in users.items()}))
    api_port = free_port()
    celery = executor == "CeleryExecutor"
    queue = queue or f"mlc-{secrets.token_hex(4)}"  # a queue of its own on the shared Redis
    roles = {user: role for user, (_, role) in users.items()}
    database_url = f"{POSTGRES}/{database}"
    broker = REDIS if celery else None
    env = airflow_env(home, database_url, api_port, specs, executor, broker, queue, roles, extra_env)
    airflow = Airflow(home, env, f"http://127.0.0.1:{api_port}")
    create_airflow_database(stack, database, env)
    commands = {
        "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(api_port)],
        "scheduler": ["scheduler"],
        "dag-processor": ["dag-processor"],
        "triggerer": ["triggerer"],
    }
    for name, args in commands.items():
        process_env = {**env, **DAG_PROCESSOR_ONLY} if name == "dag-processor" else env
        airflow.processes.append(
            start(stack, Process(name, [str(BIN / "airflow"), *args], process_env, workdir / f"{name}.log"))
        )
    if celery:
        stack.callback(forget_queue, queue)  # the keys of a heavy queue named after it, too
        # Each worker has a home of its own: it shares no disk with the scheduler, only the services.
        workers = {"worker": (queue, ["--concurrency", "2"])}
        if heavy_queue:
            # One task at a time; a node name and a log server port of its own beside the other worker (on
            # separate machines both would keep the defaults).
            workers[HEAVY_WORKER] = (heavy_queue, ["--concurrency", "1", "--celery-hostname", f"{heavy_queue}@%h"])
        for name, (served, options) in workers.items():
            worker_home = workdir / name
            worker_home.mkdir()
            worker_env = {**env, "AIRFLOW_HOME": str(worker_home)}
            if name == HEAVY_WORKER:
                worker_env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(free_port())
            argv = [str(BIN / "airflow"), "celery", "worker", "--queues", served, *options]
            airflow.processes.append(start(stack, Process(name, argv, worker_env, workdir / f"{name}.log")))
    if wait:
        wait_for_airflow(airflow)
    return airflow


def wait_for_airflow(airflow: Airflow) -> None:
    wait_for(lambda: airflow.check_alive() or healthy(airflow.api_url), 180, "Airflow's API server and scheduler")


def forget_queue(queue: str) -> None:
    """Delete what Celery kept on the shared Redis for this deployment's queue."""
    import redis

    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter(f"*{queue}*"):
        client.delete(key)


def healthy(api_url: str) -> bool:
    health = requests.get(f"{api_url}/api/v2/monitor/health", timeout=5).json()
    parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
    return all((health.get(part) or {}).get("status") == "healthy" for part in parts)


@dataclass
class Deployment:
    """A running deployment: Airflow, the MLflow server, the S3 endpoint and the source database."""

    airflow: Airflow
    mlflow_url: str
    s3_endpoint: str
    source_url: str
    queue: str
    heavy_queue: str
    #: The S3 and MLflow servers by name (``s3``, ``mlflow``), for tests that stop or freeze them.
    servers: dict[str, Process] = field(default_factory=dict)
    #: The name of the Airflow metadata database.
    airflow_database: str = ""


#: The spec's deferred sensor probes every 10 s; the copy the deployment runs probes every 2 s, so that the
#: monitoring test waits less for the triggerer once its rows are in. Its train task goes to a queue of its own
#: (``tasks.train.queue``). Nothing else differs from the file.
POKE_INTERVAL_SECONDS = 2


def write_spec(
    folder: Path, train_queue: str | None = None, change: Callable[[dict[str, Any]], None] | None = None
) -> None:
    """``docker/specs/bikes.yaml`` into ``folder``, its sensors' poke interval shortened, its train task on
    ``train_queue`` when one is given; ``change`` may then edit the spec's data in place."""
    import yaml

    data = yaml.safe_load((ROOT / "docker" / "specs" / "bikes.yaml").read_text())
    data["monitoring"]["wait"]["poke_interval_seconds"] = POKE_INTERVAL_SECONDS
    if train_queue:
        data["tasks"] = {"train": {"queue": train_queue}}
    if change:
        change(data)
    folder.mkdir()
    (folder / "bikes.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


@contextlib.contextmanager
def deployment(
    workdir: Path,
    executor: str,
    timings: Timings | None = None,
    extra_env: Mapping[str, str] | None = None,
    spec_change: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[Deployment]:
    """Everything a deployed airflow-mlc talks to, torn down on exit even after a failure.

    ``extra_env`` is added to the Airflow processes' configuration, ``spec_change`` edits the spec (``write_spec``).

    The servers start at the same time: S3, MLflow (which creates its tables) and the Airflow processes (once
    their metadata DB is copied from the template); then each is waited for. Whatever the executor, the spec
    sends the train task to a heavy queue, ``<queue>-heavy``: a Celery deployment has a worker for it alone, the
    LocalExecutor runs every task whatever its queue.
    """
    timings = timings or Timings()
    token = secrets.token_hex(3)
    with contextlib.ExitStack() as stack:
        mlflow_db = create_database(stack, f"mlc_it_{token}_mlflow")
        source_db = create_database(stack, f"mlc_it_{token}_source")
        s3_server, s3 = start_s3(stack, workdir)
        mlflow, mlflow_url = start_mlflow(stack, workdir, mlflow_db, s3)  # starts while Airflow starts
        specs = workdir / "specs"
        queue = f"mlc-{secrets.token_hex(4)}"  # queues of their own on the shared Redis
        heavy_queue = f"{queue}-heavy"
        write_spec(specs, train_queue=heavy_queue, change=spec_change)
        database = f"mlc_it_{token}_airflow"
        airflow = start_airflow(
            stack,
            workdir,
            database,
            specs,
            executor,
            wait=False,
            queue=queue,
            heavy_queue=heavy_queue,
            extra_env=extra_env,
        )
        stack.callback(stop_together, [s3_server, mlflow, *airflow.processes])  # first thing on exit
        timings.mark("airflow processes started")
        s3_ready(s3_server, s3)
        wait_for_airflow(airflow)
        timings.mark("airflow healthy")
        wait_for_mlflow(mlflow, mlflow_url)
        timings.mark("mlflow healthy")
        servers = {"s3": s3_server, "mlflow": mlflow}
        yield Deployment(airflow, mlflow_url, s3, source_db, queue, heavy_queue, servers, database)
