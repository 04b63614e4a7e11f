"""MLflowHook's credentials: basic auth or a bearer token per connection, sent by MLflow, never in os.environ.

The requests go to a loopback HTTP server that records the ``Authorization`` header of each one and answers
as an MLflow server would: registry look-ups of unknown models (404 ``RESOURCE_DOES_NOT_EXIST``) and
downloads of artifacts through the tracking server (``mlflow-artifacts``).
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_mlc.core import mlflow_auth
from airflow_mlc.core.mlflow_auth import MlflowCredentials
from airflow_mlc.core.tracking import MlflowTarget
from airflow_mlc.hooks.mlflow import MLflowHook

pytestmark = pytest.mark.unit

ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
#: The files of the artifact folder the server serves, many enough for MLflow to download them in parallel.
FILES = {f"part-{number}.txt": f"content {number}".encode() for number in range(8)}


class Request:
    """One request the server received: its path, query and ``Authorization`` header."""

    def __init__(self, path: str, query: dict[str, list[str]], authorization: str | None) -> None:
        self.path, self.query, self.authorization = path, query, authorization

    def __repr__(self) -> str:
        return f"Request({self.path!r}, {self.query!r}, {self.authorization!r})"


class FakeMlflowServer(ThreadingHTTPServer):
    """An MLflow server that knows no registered model and serves one artifact folder, ``FILES``."""

    daemon_threads = True

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.delay = delay
        self.requests: list[Request] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def record(self, request: Request) -> None:
        with self.lock:
            self.requests.append(request)

    def received(self) -> list[Request]:
        with self.lock:
            return list(self.requests)


class _Handler(BaseHTTPRequestHandler):
    server: FakeMlflowServer

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        self._answer()

    def do_POST(self) -> None:  # noqa: N802
        self._answer()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        parts = urlsplit(self.path)
        self.server.record(Request(parts.path, parse_qs(parts.query), self.headers.get("Authorization")))
        time.sleep(self.server.delay)  # requests of concurrent probes overlap
        if parts.path == ARTIFACTS:
            files = [{"path": name, "is_dir": False, "file_size": len(data)} for name, data in FILES.items()]
            self._send(200, json.dumps({"files": files}).encode(), "application/json")
        elif parts.path.startswith(ARTIFACTS + "/") and parts.path.rsplit("/", 1)[-1] in FILES:
            self._send(200, FILES[parts.path.rsplit("/", 1)[-1]], "application/octet-stream")
        else:
            body = {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"no such resource: {parts.path}"}
            self._send(404, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the signature of http.server
        pass


@contextmanager
def fake_mlflow_server(delay: float = 0.0) -> Iterator[FakeMlflowServer]:
    """The server, serving in a thread on a free loopback port until the block ends."""
    server = FakeMlflowServer(delay)
    thread = threading.Thread(target=server.serve_forever, name="fake-mlflow", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def basic(login: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> None:
    """An Airflow connection of type ``mlflow``, as an ``AIRFLOW_CONN_<ID>`` variable in JSON."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "mlflow", **fields}))


def mlflow_variables() -> set[str]:
    """The MLflow client variables set, but the tracking URI (``mlflow.set_tracking_uri`` sets it: no secret)."""
    return {name for name in os.environ if name.startswith("MLFLOW_TRACKING_") and name != "MLFLOW_TRACKING_URI"}


def environment_holds(*secrets: str) -> bool:
    """Whether a variable other than the test's own ``AIRFLOW_CONN_*`` holds one of ``secrets``."""
    values = [value for name, value in os.environ.items() if not name.startswith("AIRFLOW_CONN_")]
    return any(secret in value for value in values for secret in secrets)


@contextmanager
def mlflow_left_as_found(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No MLflow credential variable inside (MLflow would prefer it to a connection's); MLflow's URIs restored after.

    Activating a target points the mlflow module at it: later tests must not talk to a stopped loopback server.
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    tracking, registry = tracking_utils._tracking_uri, registry_utils._registry_uri
    variables = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    try:
        yield
    finally:
        mlflow.set_tracking_uri(tracking)
        mlflow.set_registry_uri(registry)
        for name, value in variables.items():  # set by mlflow.set_*_uri, for subprocesses
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(autouse=True)
def mlflow_isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with mlflow_left_as_found(monkeypatch):
        yield


# --- the hook: basic auth or a bearer token ------------------------------------------------------------


def test_login_and_password_are_basic_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "mlc_basic", host="mlflow.example", port=5000, login="alice", password="s3cret-a")
    target = MLflowHook("mlc_basic").get_conn()
    assert target.tracking_uri == "http://mlflow.example:5000"
    assert target.credentials == MlflowCredentials(username="alice", password="s3cret-a")
    assert target.credentials.authorization == basic("alice", "s3cret-a")
    assert "s3cret-a" not in repr(target) and "s3cret-a" not in repr(target.credentials)


def test_a_password_alone_or_the_token_extra_is_a_bearer_token(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "mlc_password", host="http://mlflow", password="tok-1")
    set_connection(monkeypatch, "mlc_token", host="http://mlflow", extra={"token": "tok-2"})
    set_connection(monkeypatch, "mlc_both", host="http://mlflow", password="tok-3", extra={"token": "tok-4"})
    set_connection(monkeypatch, "mlc_open", host="http://mlflow")
    assert MLflowHook("mlc_password").get_conn().credentials.authorization == "Bearer tok-1"
    assert MLflowHook("mlc_token").get_conn().credentials.authorization == "Bearer tok-2"
    assert MLflowHook("mlc_both").get_conn().credentials.authorization == "Bearer tok-3"
    assert "tok-1" not in repr(MLflowHook("mlc_password").get_conn())
    assert MLflowHook("mlc_open").get_conn().credentials is None


def test_the_default_ui_address_holds_no_userinfo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Links built from it are stored (extra links, XComs): a ``user:password@`` in the host is left out."""
    set_connection(monkeypatch, "mlc_userinfo", host="https://u:s3cret-u@mlflow.example/prefix")
    target = MLflowHook("mlc_userinfo").get_conn()
    assert target.ui_url == "https://mlflow.example/prefix"
    set_connection(monkeypatch, "mlc_ui", host="http://mlflow:5000", extra={"ui_url": "https://mlflow.example"})
    assert MLflowHook("mlc_ui").get_conn().ui_url == "https://mlflow.example"


def test_a_login_without_a_password_sends_nothing() -> None:
    assert MlflowCredentials(username="alice").authorization is None
    assert MlflowCredentials().authorization is None


# --- activation: the current context's requests carry the credentials ---------------------------------


def test_activation_sets_the_header_of_the_context_and_never_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking.request_header.registry import resolve_request_headers

    set_connection(monkeypatch, "mlc_basic", host="http://mlflow", login="alice", password="s3cret-a")
    set_connection(monkeypatch, "mlc_open", host="http://mlflow")
    with mlflow_auth.credentials_scope(None):
        MLflowHook("mlc_basic").get_conn().activate()
        assert resolve_request_headers()["Authorization"] == basic("alice", "s3cret-a")
        seen_elsewhere: list[Any] = []
        other = threading.Thread(target=lambda: seen_elsewhere.append(resolve_request_headers()))
        other.start()
        other.join()
        assert "Authorization" not in seen_elsewhere[0]  # a thread of its own: not this context's credentials
        MLflowHook("mlc_open").get_conn().activate()  # a connection without credentials clears them
        assert "Authorization" not in resolve_request_headers()
    assert mlflow_variables() == set() and not environment_holds("s3cret-a")


def test_two_connections_in_two_threads_each_send_their_own(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Registry calls and artifact downloads (MLflow's own download threads) of each connection, at once."""
    import mlflow
    from mlflow.exceptions import MlflowException

    with fake_mlflow_server(delay=0.01) as server:
        set_connection(monkeypatch, "mlc_alice", host=server.url, login="alice", password="s3cret-a")
        set_connection(monkeypatch, "mlc_bob", host=server.url, login="bob", password="s3cret-b")
        errors: list[BaseException] = []
        start = threading.Barrier(2)

        def work(conn_id: str, destination: Path) -> None:
            try:
                target = MLflowHook(conn_id).get_conn()
                client = target.activate()
                start.wait()
                for _ in range(3):
                    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
                        client.get_registered_model(f"model-{conn_id}")
                destination.mkdir()
                mlflow.artifacts.download_artifacts(
                    artifact_uri=f"mlflow-artifacts:/{conn_id}/artifacts/model",
                    tracking_uri=target.tracking_uri,
                    dst_path=str(destination),
                )
            except BaseException as exc:  # reported below, from the test's thread
                errors.append(exc)

        with mlflow_auth.credentials_scope(None):
            threads = [
                threading.Thread(target=work, args=(conn_id, tmp_path / conn_id))
                for conn_id in ("mlc_alice", "mlc_bob")
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert errors == []
        requests = server.received()

    expected = {"mlc_alice": basic("alice", "s3cret-a"), "mlc_bob": basic("bob", "s3cret-b")}
    for conn_id, authorization in expected.items():
        mine = [r for r in requests if conn_id in r.path or conn_id in json.dumps(r.query)]
        downloads = [r for r in mine if r.path.startswith(ARTIFACTS + "/") and r.path.rsplit("/", 1)[-1] in FILES]
        assert len(downloads) == len(FILES)  # every file, from MLflow's download threads
        assert len(mine) >= 3 + 1 + len(FILES)  # the registry calls, the listing, the files
        assert {r.authorization for r in mine} == {authorization}, mine
        for name, data in FILES.items():
            assert (tmp_path / conn_id / "model" / name).read_bytes() == data
    assert {r.authorization for r in requests} == set(expected.values())  # no request without credentials
    assert mlflow_variables() == set() and not environment_holds("s3cret-a", "s3cret-b")


def test_a_target_without_credentials_sends_no_header() -> None:
    from mlflow.exceptions import MlflowException

    with fake_mlflow_server() as server, mlflow_auth.credentials_scope(None):
        client = MlflowTarget(tracking_uri=server.url).activate()
        with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
            client.get_registered_model("nobody")
        assert [r.authorization for r in server.received()] == [None]
