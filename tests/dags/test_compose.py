"""docker/compose.yaml agrees with the code, the deployment spec, the image and the integration tier.

Nothing is started here: the files are parsed and compared. tests/integration proves the same settings against
real processes (PostgreSQL, an S3 server, the MLflow server, Airflow's API server, scheduler, triggerer and a
Celery worker). Values are read as compose sees them with no variable set: ``${VAR:-default}`` is ``default``.
"""

from __future__ import annotations

import json
import re
import shlex
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import SplitResult, urlsplit

import pytest
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.dags

DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
SPEC = DOCKER / "specs" / "bikes.yaml"
COMMON = "x-airflow-common"
#: The Airflow processes the integration tier starts (tests.integration.stack.start_airflow), by command.
AIRFLOW_PROCESSES = ("api-server", "scheduler", "dag-processor", "triggerer", "celery worker")

#: Settings of tests.integration.stack.airflow_env that a compose deployment leaves out on purpose.
TEST_ONLY_KEYS = {
    # Free ports picked per test run, so that two deployments on one machine do not collide; compose keeps the
    # default log server ports, each in its own container.
    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
    "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT",
    # Speed-ups, so that a test does not wait for the next DAG folder scan or scheduler loop.
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC",
    # The tests sign in with a password they wrote; in compose the API server generates it.
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
    # A queue per test deployment on a shared Redis; compose has a Redis of its own and the default queue.
    "AIRFLOW__OPERATORS__DEFAULT_QUEUE",
    # The official image sets it (/opt/airflow).
    "AIRFLOW_HOME",
}
#: Settings that must have the same value in both deployments.
SAME_VALUE_KEYS = (
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS",
    "AIRFLOW__CORE__LOAD_EXAMPLES",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR",
    "OMP_NUM_THREADS",
)
#: Shared secrets: each must come from a variable whose default says it is to be replaced.
SECRET_KEYS = ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY")

# ${VAR}, ${VAR-default} or ${VAR:-default}, but not $${VAR} (an escaped dollar, left to the container's shell).
VARIABLE = re.compile(r"(?<!\$)\$\{(?P<name>\w+)(?::?-(?P<default>[^}]*))?\}")


# Reading the files ------------------------------------------------------------------------------------------


def resolved(value: Any) -> Any:
    """A compose value with every variable at its default, as ``docker compose`` sees it with no ``.env``."""
    if isinstance(value, str):
        return VARIABLE.sub(lambda match: match["default"] or "", value).replace("$$", "$")
    if isinstance(value, dict):
        return {key: resolved(item) for key, item in value.items()}
    if isinstance(value, list):
        return [resolved(item) for item in value]
    return value


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    """The compose file as written (YAML anchors and merge keys resolved, variables not)."""
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def compose(raw: dict[str, Any]) -> dict[str, Any]:
    return resolved(raw)


@pytest.fixture(scope="module")
def env(compose: dict[str, Any]) -> dict[str, str]:
    """The environment shared by every Airflow service."""
    return {key: str(value) for key, value in compose[COMMON]["environment"].items()}


@pytest.fixture(scope="module")
def spec() -> Any:
    from airflow_mlc.spec import load_spec

    return load_spec(SPEC)


def service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    services = compose["services"]
    assert name in services, f"compose.yaml has no service {name!r} (it has {sorted(services)})"
    return services[name]


def args(value: str | list[Any] | None) -> list[str]:
    """A command or entrypoint as the argument list compose passes to the container."""
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(item) for item in value]


def argv(compose: dict[str, Any], name: str) -> list[str]:
    definition = service(compose, name)
    return args(definition.get("entrypoint")) + args(definition.get("command"))


def option(arguments: list[str], name: str, where: str) -> str:
    """The value of ``--name value`` or ``--name=value``."""
    for index, argument in enumerate(arguments):
        if argument == name and index + 1 < len(arguments):
            return arguments[index + 1]
        if argument.startswith(f"{name}="):
            return argument.split("=", 1)[1]
    pytest.fail(f"{where}: no {name} in its command {shlex.join(arguments)!r}")


def service_env(compose: dict[str, Any], name: str) -> dict[str, str]:
    return {key: str(value) for key, value in (service(compose, name).get("environment") or {}).items()}


def connection(env: dict[str, str], conn_id: str) -> dict[str, Any]:
    """The connection ``conn_id`` from its ``AIRFLOW_CONN_<ID>`` variable, in Airflow's JSON format."""
    key = f"AIRFLOW_CONN_{conn_id.upper()}"
    assert key in env, f"the shared environment does not define connection {conn_id!r} ({key})"
    try:
        value = json.loads(env[key])
    except json.JSONDecodeError as exc:
        pytest.fail(f"{key} is not JSON (Airflow's JSON connection format): {exc}: {env[key]!r}")
    assert isinstance(value, dict), f"{key} is not a JSON object: {env[key]!r}"
    return value


def extra(conn: dict[str, Any]) -> dict[str, Any]:
    value = conn.get("extra") or {}
    return json.loads(value) if isinstance(value, str) else value


def service_with_command(compose: dict[str, Any], command: str) -> str:
    """The one service whose command starts with ``command`` (an Airflow subcommand)."""
    names = [
        name
        for name, definition in compose["services"].items()
        if args(definition.get("command"))[: len(command.split())] == command.split()
    ]
    assert len(names) == 1, f"expected one service running `airflow {command}`, found {names}"
    return names[0]


def published_port(compose: dict[str, Any], name: str, container_port: int) -> int:
    for mapping in service(compose, name).get("ports") or []:
        *host, inside = str(mapping).split(":")
        if int(inside.split("/")[0]) == container_port and host:
            return int(host[-1])
    pytest.fail(f"service {name!r} publishes no host port for its port {container_port}")


def postgres(compose: dict[str, Any]) -> dict[str, str]:
    return service_env(compose, "postgres")


def created_databases(compose: dict[str, Any]) -> dict[str, str]:
    """Database -> owner, from the init SQL that compose mounts into the postgres image's init folder."""
    scripts = [
        volume.split(":")[0]
        for volume in service(compose, "postgres").get("volumes") or []
        if volume.split(":")[1].startswith("/docker-entrypoint-initdb.d/")
    ]
    assert scripts, "the postgres service mounts no init script into /docker-entrypoint-initdb.d"
    databases: dict[str, str] = {}
    for script in scripts:
        path = (DOCKER / script).resolve()
        assert path.is_file(), f"the postgres init script {script} does not exist beside compose.yaml"
        text = re.sub(r"--[^\n]*", "", path.read_text())
        for name, owner in re.findall(r'CREATE\s+DATABASE\s+"?(\w+)"?(?:\s+(?:WITH\s+)?OWNER\s*=?\s*"?(\w+)"?)?', text):
            databases[name] = owner
    return databases


def check_postgres_url(compose: dict[str, Any], url: str, what: str) -> str:
    """Check that ``url`` names the postgres service, its user and a database of the init SQL; returns it."""
    parts = urlsplit(url.removeprefix("db+"))
    assert parts.scheme.startswith("postgresql"), f"{what} is not a PostgreSQL URL: {url}"
    return check_postgres_parts(compose, parts.hostname, parts.port, parts.username, parts.password, parts.path, what)


def check_postgres_parts(
    compose: dict[str, Any], host: Any, port: Any, user: Any, password: Any, database: Any, what: str
) -> str:
    server, databases = postgres(compose), created_databases(compose)
    database = str(database or "").lstrip("/")
    assert host == "postgres", f"{what} points at host {host!r}, not the postgres service"
    assert port in (None, 5432), f"{what} uses port {port}, not PostgreSQL's 5432"
    assert user == server["POSTGRES_USER"], f"{what} signs in as {user!r}, postgres has {server['POSTGRES_USER']!r}"
    assert password == server["POSTGRES_PASSWORD"], f"{what} has another password than the postgres service"
    assert database in databases, f"{what} names database {database!r}; the init SQL creates {sorted(databases)}"
    return database


def dockerfile_copies() -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY of the Dockerfile."""
    copies = []
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY "):
            words = [word for word in shlex.split(line)[1:] if not word.startswith("--")]
            copies.append((words[:-1], words[-1]))
    return copies


def repo_file_in_image(path: str) -> Path | None:
    """The file of the repository the Dockerfile copies to ``path`` in the image, if any."""
    target = PurePosixPath(path)
    for sources, destination in dockerfile_copies():
        for source in sources:
            if source.endswith("/"):  # a folder's contents into a folder
                if target.is_relative_to(destination):
                    return ROOT / source / target.relative_to(destination)
            elif destination.endswith("/"):  # files into a folder
                if target == PurePosixPath(destination) / PurePosixPath(source).name:
                    return ROOT / source
            elif target == PurePosixPath(destination):
                return ROOT / source
    return None


def mlflow_hook_conn_type() -> str:
    """``MLflowHook.conn_type``, read from the hook's source: importing the hook loads Airflow (seconds)."""
    import ast

    source = ROOT / "airflow_mlc" / "hooks" / "mlflow.py"
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ClassDef) and node.name == "MLflowHook":
            for statement in node.body:
                if isinstance(statement, ast.Assign) and any(
                    isinstance(target, ast.Name) and target.id == "conn_type" for target in statement.targets
                ):
                    return str(ast.literal_eval(statement.value))
    pytest.fail(f"{source} has no MLflowHook.conn_type = '...'")


# The connections of the spec --------------------------------------------------------------------------------


def test_every_connection_of_the_spec_is_set_with_the_type_the_code_expects(env: dict[str, str], spec: Any) -> None:
    from airflow_mlc.get_provider_info import get_provider_info

    mlflow_type = mlflow_hook_conn_type()
    registered = {c["hook-class-name"]: c["connection-type"] for c in get_provider_info()["connection-types"]}
    assert registered.get("airflow_mlc.hooks.mlflow.MLflowHook") == mlflow_type, (
        f"the provider registers MLflowHook as {registered}, the hook says conn_type {mlflow_type!r}"
    )
    expected: dict[str, set[str]] = {}
    # A SQL source goes through the connection's SQL hook (PostgreSQL here); an s3:// source through boto.
    source_type = "postgres" if spec.source.sql else "aws"
    for conn_id, conn_type in [
        (spec.source.conn_id, source_type),
        (spec.storage.conn_id, "aws"),  # s3:// artifact root: the Amazon provider's AwsBaseHook
        (spec.mlflow.conn_id, mlflow_type),
        (spec.prediction.conn_id if spec.prediction else None, "postgres"),
    ]:
        if conn_id:
            expected.setdefault(conn_id, set()).add(conn_type)
    assert expected, "the deployment spec names no connection"
    for conn_id, types in sorted(expected.items()):
        assert len(types) == 1, f"the spec uses connection {conn_id!r} as {sorted(types)}"
        actual = connection(env, conn_id).get("conn_type")
        assert actual == next(iter(types)), f"connection {conn_id!r} has conn_type {actual!r}, expected {types}"


def test_mlflow_connection_points_at_the_mlflow_server(compose: dict[str, Any], env: dict[str, str], spec: Any) -> None:
    conn = connection(env, spec.mlflow.conn_id)
    server = argv(compose, "mlflow")
    assert "mlflow" in server and server[server.index("mlflow") :][:2] == ["mlflow", "server"], (
        f"service mlflow does not run `mlflow server`: {server}"
    )
    port = int(option(server, "--port", "the mlflow service"))
    host = urlsplit(conn["host"] if "://" in conn["host"] else f"http://{conn['host']}")
    assert host.hostname == "mlflow", f"connection {spec.mlflow.conn_id!r} points at {conn['host']!r}, not mlflow"
    assert (host.port or conn.get("port")) == port, f"connection {spec.mlflow.conn_id!r} port is not {port}"
    # The server answers only the Host headers it allows: the workers' and the browser's.
    allowed = option(server, "--allowed-hosts", "the mlflow service").split(",")
    ui = urlsplit(extra(conn).get("ui_url", ""))
    for who, address in [("the workers", f"mlflow:{port}"), ("the browser (ui_url)", ui.netloc)]:
        assert any(fnmatch(address, pattern) for pattern in allowed), f"--allowed-hosts {allowed} refuses {who}"
    assert ui.port == published_port(compose, "mlflow", port), f"ui_url {ui.geturl()} is not MLflow's published port"


def test_s3_connection_points_at_minio_and_the_buckets_exist(
    compose: dict[str, Any], env: dict[str, str], spec: Any
) -> None:
    conn = connection(env, spec.storage.conn_id)
    endpoint = extra(conn).get("endpoint_url", "")
    minio = argv(compose, "minio")
    minio_port = int(option(minio, "--address", "the minio service").rsplit(":", 1)[1])
    assert urlsplit(endpoint).hostname == "minio", f"endpoint_url {endpoint!r} is not the minio service"
    assert urlsplit(endpoint).port == minio_port, f"endpoint_url {endpoint!r}: MinIO serves S3 on {minio_port}"
    root = service_env(compose, "minio")
    assert (conn.get("login"), conn.get("password")) == (root["MINIO_ROOT_USER"], root["MINIO_ROOT_PASSWORD"]), (
        f"connection {spec.storage.conn_id!r} has other credentials than MinIO"
    )

    # The MLflow server writes model files to the same store, with the same credentials.
    mlflow = service_env(compose, "mlflow")
    assert mlflow.get("MLFLOW_S3_ENDPOINT_URL") == endpoint, "the MLflow server uses another S3 endpoint"
    assert (mlflow.get("AWS_ACCESS_KEY_ID"), mlflow.get("AWS_SECRET_ACCESS_KEY")) == (
        root["MINIO_ROOT_USER"],
        root["MINIO_ROOT_PASSWORD"],
    ), "the MLflow server has other S3 credentials than MinIO"
    assert mlflow.get("AWS_DEFAULT_REGION") == extra(conn).get("region_name"), "regions differ"

    init = service(compose, "minio-init")
    assert init.get("depends_on", {}).get("minio", {}).get("condition") == "service_healthy"
    script = " ".join(argv(compose, "minio-init"))
    assert f"http://minio:{minio_port}" in script, f"minio-init does not talk to minio:{minio_port}: {script}"
    created = set(service_env(compose, "minio-init").get("BUCKETS", "").split())
    needed = {
        "the spec's storage.artifact_root": urlsplit(spec.storage.artifact_root).netloc,
        "the MLflow server's --artifacts-destination": urlsplit(
            option(argv(compose, "mlflow"), "--artifacts-destination", "the mlflow service")
        ).netloc,
    }
    for what, bucket in needed.items():
        assert bucket in created, f"minio-init creates {sorted(created)}, not {bucket!r} ({what})"


# Databases, broker, API server ------------------------------------------------------------------------------


def test_databases_are_on_the_postgres_service_and_created_by_the_init_sql(
    compose: dict[str, Any], env: dict[str, str], spec: Any
) -> None:
    databases = created_databases(compose)
    owner = postgres(compose)["POSTGRES_USER"]
    assert all(o in ("", owner) for o in databases.values()), f"the init SQL gives databases to others: {databases}"
    assert postgres(compose).get("POSTGRES_DB") not in databases, "POSTGRES_DB would be created twice"

    airflow = check_postgres_url(compose, env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], "SQL_ALCHEMY_CONN")
    results = check_postgres_url(compose, env["AIRFLOW__CELERY__RESULT_BACKEND"], "the Celery RESULT_BACKEND")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+"), "Celery reads a database backend as db+..."
    mlflow = check_postgres_url(
        compose, option(argv(compose, "mlflow"), "--backend-store-uri", "the mlflow service"), "MLflow's store"
    )
    source_conn = connection(env, spec.source.conn_id)
    fields = ("host", "port", "login", "password", "schema")
    source = check_postgres_parts(compose, *(source_conn.get(f) for f in fields), f"connection {spec.source.conn_id!r}")
    loaded = check_postgres_url(compose, service_env(compose, "airflow-init")["MLC_SOURCE_DB_URL"], "the loader")

    assert results == airflow, "Celery's results go to another database than Airflow's"
    assert loaded == source, f"airflow-init loads database {loaded!r}, the spec reads {source!r}"
    if spec.prediction and spec.prediction.conn_id:
        predictions = connection(env, spec.prediction.conn_id)
        assert predictions.get("schema") == source, "the predictions go to another database than the source"
    assert len({airflow, mlflow, source}) == 3, f"Airflow, MLflow and the source share a database: {databases}"


def test_broker_is_the_redis_service(compose: dict[str, Any], env: dict[str, str]) -> None:
    broker = urlsplit(env["AIRFLOW__CELERY__BROKER_URL"])
    assert (broker.scheme, broker.hostname) == ("redis", "redis"), f"the broker is {broker.geturl()}, not redis"
    assert broker.port in (None, 6379), f"the broker port {broker.port} is not Redis's 6379"
    assert service(compose, "redis")["image"].startswith("redis:7"), "the broker is not Redis 7"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_execution_api_url_names_the_api_server_and_its_port(compose: dict[str, Any], env: dict[str, str]) -> None:
    name = service_with_command(compose, "api-server")
    port = int(option(argv(compose, name), "--port", f"service {name}"))
    url: SplitResult = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert url.hostname == name, f"EXECUTION_API_SERVER_URL names {url.hostname!r}, the API server is {name!r}"
    assert url.port == port, f"EXECUTION_API_SERVER_URL uses port {url.port}, the API server listens on {port}"
    assert url.path == "/execution/", f"EXECUTION_API_SERVER_URL path is {url.path!r}, not /execution/"
    base = urlsplit(env["AIRFLOW__API__BASE_URL"])
    assert base.port == published_port(compose, name, port), "API__BASE_URL is not the API server's published port"


# Services, image, specs -------------------------------------------------------------------------------------


def test_specs_folder_is_mounted_where_mlc_specs_dir_points(compose: dict[str, Any], env: dict[str, str]) -> None:
    mounts = {v.split(":")[0]: v.split(":")[1] for v in compose[COMMON]["volumes"] if v.startswith("./specs:")}
    assert mounts, "the Airflow services do not mount ./specs"
    assert mounts["./specs"] == env["MLC_SPECS_DIR"], f"MLC_SPECS_DIR is not the mount target {mounts['./specs']}"
    assert (DOCKER / "specs").is_dir() and SPEC.is_file(), f"{SPEC} is not beside compose.yaml"


def test_every_airflow_service_uses_the_common_image_environment_and_mounts(compose: dict[str, Any]) -> None:
    common = compose[COMMON]
    names = [name for name in compose["services"] if name.startswith("airflow-")]
    assert names, "compose.yaml has no airflow-* service"
    for name in names:
        definition = service(compose, name)
        assert definition.get("image") == common["image"], f"{name} does not use the common image"
        assert definition.get("build") == common["build"], f"{name} is not built like the common image"
        environment = definition.get("environment") or {}
        different = sorted(k for k, v in common["environment"].items() if environment.get(k) != v)
        assert not different, f"{name} lacks or overrides common settings: {different}"
        missing = sorted(set(common["volumes"]) - set(definition.get("volumes") or []))
        assert not missing, f"{name} does not mount {missing}"
    mlflow = service(compose, "mlflow")
    assert (mlflow.get("image"), mlflow.get("build")) == (common["image"], common["build"]), "mlflow: another image"


def test_compose_runs_every_process_of_the_integration_tier(compose: dict[str, Any]) -> None:
    for command in AIRFLOW_PROCESSES:
        assert service_with_command(compose, command).startswith("airflow-")
    init = " ".join(argv(compose, "airflow-init"))
    assert "airflow db migrate" in init, f"airflow-init does not migrate the metadata database: {init}"
    assert re.search(r"python \S+/load_source_table\.py", init), f"airflow-init does not load the source: {init}"


def test_dependencies_wait_for_health_or_completion(compose: dict[str, Any]) -> None:
    services = compose["services"]
    one_shot = {name for name, definition in services.items() if definition.get("restart") in (None, "no")}
    for name, definition in services.items():
        if name not in one_shot:
            assert (definition.get("healthcheck") or {}).get("test"), f"long-running service {name} has no healthcheck"
        for target, rule in (definition.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on unknown service {target}"
            condition = rule.get("condition")
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target} to be healthy: no healthcheck"
            elif condition == "service_completed_successfully":
                assert target in one_shot, f"{name} waits for {target} to complete, but it restarts"
            else:
                pytest.fail(f"{name} starts after {target} without waiting for health or completion ({condition})")
    waits = {
        name: set(service(compose, name).get("depends_on") or {})
        for name in [*(n for n in services if n.startswith("airflow-") and n != "airflow-init"), "mlflow"]
    }
    for name, targets in waits.items():
        missing = {"postgres", "redis", "airflow-init"} - targets if name.startswith("airflow-") else set()
        assert not missing, f"{name} does not wait for {sorted(missing)}"
    # Tasks and deferred sensors talk to MLflow and S3.
    for name in (service_with_command(compose, "celery worker"), service_with_command(compose, "triggerer")):
        missing = {"mlflow", "minio-init"} - waits[name]
        assert not missing, f"{name} runs tasks or triggers but does not wait for {sorted(missing)}"
    missing = {"postgres", "minio-init"} - waits["mlflow"]
    assert not missing, f"mlflow does not wait for its database and bucket: {sorted(missing)}"


def test_image_is_built_from_the_dockerfile_on_the_pinned_airflow(compose: dict[str, Any]) -> None:
    build = compose[COMMON]["build"]
    assert (DOCKER / build["context"]).resolve() == ROOT, f"the build context {build['context']} is not the repo"
    assert (ROOT / build["dockerfile"]).resolve() == DOCKERFILE, f"the image is not built from {DOCKERFILE}"
    base = re.search(r"^FROM apache/airflow:(\S+)-python(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert base, "the Dockerfile does not build on an apache/airflow:<version>-python<version> image"
    constraints = (ROOT / "constraints.txt").read_text()
    pinned = re.search(r"^apache-airflow==(\S+)$", constraints, re.MULTILINE)
    assert pinned, "constraints.txt pins no apache-airflow version"
    assert base[1] == pinned[1], f"the image is Airflow {base[1]}, constraints.txt pins apache-airflow=={pinned[1]}"
    python = re.search(r"--python (\S+)", constraints)
    assert python, "constraints.txt does not say which Python it was compiled for (--python)"
    assert base[2] == python[1], f"the image has Python {base[2]}, constraints.txt is for Python {python[1]}"


def test_files_the_stack_runs_are_in_the_image(compose: dict[str, Any], env: dict[str, str]) -> None:
    dags = repo_file_in_image(env["AIRFLOW__CORE__DAGS_FOLDER"] + "/mlc_dags.py")
    assert dags and dags.is_file(), f"the image has no mlc_dags.py in DAGS_FOLDER {env['AIRFLOW__CORE__DAGS_FOLDER']}"
    init = " ".join(argv(compose, "airflow-init"))
    script = re.search(r"python (\S+\.py)", init)
    assert script, f"airflow-init runs no Python script: {init}"
    loader = repo_file_in_image(script[1])
    assert loader == DOCKER / "load_source_table.py", f"the Dockerfile does not copy the loader to {script[1]}"
    csv = service_env(compose, "airflow-init")["MLC_SOURCE_CSV"]
    data = repo_file_in_image(csv)
    assert data and data.is_file(), f"the image has no demo data at {csv}"


def test_every_integration_setting_is_in_compose(env: dict[str, str]) -> None:
    import os
    from unittest import mock

    from tests.integration.stack import airflow_env

    with mock.patch.dict(os.environ, clear=True):  # only what airflow_env itself sets
        integration = airflow_env(
            Path("/airflow"),
            "postgresql+psycopg2://u:p@db/airflow",
            8080,
            Path("/specs"),
            "CeleryExecutor",
            "redis://redis:6379/0",
            "default",
        )
    missing = sorted(set(integration) - set(env) - TEST_ONLY_KEYS)
    assert not missing, f"the integration tier sets {missing}, compose does not (or add them to TEST_ONLY_KEYS)"
    stale = sorted(TEST_ONLY_KEYS - set(integration))
    assert not stale, f"TEST_ONLY_KEYS lists settings the integration tier no longer sets: {stale}"
    different = {key: (env[key], integration[key]) for key in SAME_VALUE_KEYS if env.get(key) != integration[key]}
    assert not different, f"compose and the integration tier disagree (compose, integration): {different}"


def test_shared_secrets_are_placeholders_to_replace(raw: dict[str, Any], env: dict[str, str]) -> None:
    from cryptography.fernet import Fernet

    written = raw[COMMON]["environment"]
    for key in SECRET_KEYS:
        variable = VARIABLE.fullmatch(str(written.get(key, "")))
        assert variable and variable["default"], f"{key} is not read from a variable with a default: {written.get(key)}"
        assert "change-me" in variable["default"].lower(), f"{key}'s default does not say it must be replaced"
    try:  # deferred tasks store their triggers encrypted: the default must work
        Fernet(env["AIRFLOW__CORE__FERNET_KEY"])
    except ValueError as exc:
        pytest.fail(f"the default AIRFLOW__CORE__FERNET_KEY is not a Fernet key: {exc}")
