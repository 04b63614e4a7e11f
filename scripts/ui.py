"""The Airflow UI on the demo's home: ``make ui`` (Ctrl-C stops it).

Starts the API server (on 127.0.0.1 only), the scheduler, the DAG processor and the triggerer as child
processes, with the demo's DAGs only (no example DAGs) and the demo's metadata DB, so the runs of
``make demo`` are there to browse, and a DAG unpaused or triggered from the UI runs for real (LocalExecutor).
Sign-in: the user ``admin`` of Airflow's simple auth manager, its password kept in the home's passwords
file. The demo need not have run first: an empty home gets a migrated DB.

AIRFLOW_HOME is set by the Makefile (default: .mlc/airflow in the checkout); ``--port`` (default 8080).
The components' output goes to ``$AIRFLOW_HOME/ui-logs``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's bin, not resolved: its airflow and python
MARKER = ".mlc-demo"  # as scripts/demo.py: this folder is a demo home
USER = "admin"
PASSWORDS = "simple_auth_manager_passwords.json.generated"  # the simple auth manager's default file name
HOST = "127.0.0.1"
# The task runners read logs from the local disk here, so no log server is started (it would listen on every
# interface): a running task's log in the UI notes that its served copy could not be read.
COMPONENTS = {
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}


def demo_home() -> Path:
    """The demo's AIRFLOW_HOME, created (and marked as a demo home) if missing; never emptied here."""
    home = Path(os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".mlc" / "airflow")))
    if home.exists() and any(home.iterdir()) and not (home / MARKER).exists():
        sys.exit(f"{home} is not a demo home (no {MARKER} file): choose another folder with DEMO_HOME=...")
    home.mkdir(parents=True, exist_ok=True)
    (home / MARKER).touch()
    return home


def admin_password(home: Path) -> str:
    """The password of the UI's ``admin`` user, generated once and kept in the home's passwords file."""
    path = home / PASSWORDS
    passwords = json.loads(path.read_text()) if path.exists() and path.read_text().strip() else {}
    if not passwords.get(USER):
        passwords[USER] = secrets.token_urlsafe(12)
        home.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(passwords) + "\n")
        path.chmod(0o600)
    return str(passwords[USER])


def environment(home: Path, port: int) -> dict[str, str]:
    """The environment of every component: the demo's home, DAGs and auth, the venv's bin first on PATH."""
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # The LocalExecutor starts a worker per slot up front: a few suit the demo and SQLite.
        "AIRFLOW__CORE__PARALLELISM": os.environ.get("AIRFLOW__CORE__PARALLELISM", "4"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{HOST}:{port}/execution/",
        "AIRFLOW__API__HOST": HOST,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://{HOST}:{port}",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / PASSWORDS),
    }


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((HOST, port)) == 0


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def interrupt(signum: int, frame: object) -> None:
    """SIGTERM stops the UI as Ctrl-C does."""
    raise KeyboardInterrupt


def signal_group(child: subprocess.Popen[bytes], signum: int) -> None:
    """Signal a component and everything it started (its executor's workers and their tasks)."""
    try:
        os.killpg(child.pid, signum)
    except ProcessLookupError:
        pass


def stop(children: dict[str, subprocess.Popen[bytes]]) -> None:
    """Stop every component with its process group: SIGTERM, then SIGKILL to what is left after 30 s."""
    for child in children.values():
        signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + 30
    for child in children.values():
        try:
            child.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            pass
    for child in children.values():
        signal_group(child, signal.SIGKILL)  # a task a worker still runs, or a component that did not stop
        child.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080, help="the API server's port on 127.0.0.1")
    port = parser.parse_args().port
    if port_in_use(port):
        sys.exit(f"{HOST}:{port} is in use: choose another port, e.g. make ui UI_PORT={port + 1}")
    home = demo_home()
    password = admin_password(home)
    env = environment(home, port)
    logs = home / "ui-logs"
    logs.mkdir(exist_ok=True)
    url = f"http://{HOST}:{port}"

    print(f"Airflow home: {home}")
    print("Migrating the Airflow metadata DB ...")
    with (logs / "db-migrate.log").open("w") as out:
        if subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, stdout=out, stderr=out).returncode:
            sys.exit(f"airflow db migrate failed; log: {logs / 'db-migrate.log'}")

    commands = {"api-server": ["api-server", "--host", HOST, "--port", str(port)], **COMPONENTS}
    children: dict[str, subprocess.Popen[bytes]] = {}
    signal.signal(signal.SIGTERM, interrupt)
    try:
        for name, arguments in commands.items():
            with (logs / f"{name}.log").open("w") as out:
                children[name] = subprocess.Popen(
                    [str(BIN / "airflow"), *arguments],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group, stopped as a whole by stop()
                )
        print(f"Starting the API server, scheduler, DAG processor and triggerer (logs: {logs}) ...")
        deadline = time.monotonic() + 180
        while not healthy(url):
            if failed := [name for name, child in children.items() if child.poll() is not None]:
                sys.exit(f"{', '.join(failed)} stopped; see {logs}")
            if time.monotonic() > deadline:
                sys.exit(f"the API server did not answer on {url} within 180 s; see {logs / 'api-server.log'}")
            time.sleep(1)
        print(f"\nAirflow UI:  {url}")
        print(f"Sign in as:  {USER} / {password}   (kept in {home / PASSWORDS})")
        print("A DAG unpaused or triggered here runs for real (LocalExecutor). Ctrl-C stops the UI.")
        while True:
            if failed := [name for name, child in children.items() if child.poll() is not None]:
                sys.exit(f"{', '.join(failed)} stopped; see {logs}")
            time.sleep(2)
    except KeyboardInterrupt:
        print("\nStopping ...")
    finally:
        stop(children)


if __name__ == "__main__":
    main()
