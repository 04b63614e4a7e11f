"""MLflowHook: where MLflow lives, from an Airflow connection of type ``mlflow``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from airflow_mlc.core.mlflow_auth import MlflowCredentials
from airflow_mlc.core.tracking import MlflowTarget, embedded_target
from airflow_mlc.errors import BadInputError
from airflow_mlc.get_provider_info import MLFLOW_UI_FIELD_BEHAVIOUR


def airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow"))


class MLflowHook(BaseHook):
    """Resolve the MLflow tracking and registry store for the operators.

    The connection (type ``mlflow``, default id ``mlflow_default``) gives the tracking URI in *host*
    (``http://mlflow:5000``; a port in *port* is appended), or in the extra ``tracking_uri``. Optional
    extras: ``registry_uri``, ``artifact_location`` (for experiments this provider creates), ``ui_url``
    and ``token``. A login and password become MLflow's basic-auth credentials; a password alone is a
    bearer token. Credentials are never logged and never put in the process environment: each MLflow
    request of the task (or of the probe, or of the UI's request) that activated the target carries them
    in its ``Authorization`` header (see ``airflow_mlc.core.mlflow_auth``).

    Without that connection, the embedded default: a SQLite store and an artifact folder under
    ``$AIRFLOW_HOME/mlflow``.
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "mlflow"
    hook_name = "MLflow"

    def __init__(self, mlflow_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.mlflow_conn_id = mlflow_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form, for Airflow versions that ask the hook instead of reading the provider info."""
        return {
            "hidden_fields": list(MLFLOW_UI_FIELD_BEHAVIOUR["hidden-fields"]),
            "relabeling": dict(MLFLOW_UI_FIELD_BEHAVIOUR["relabeling"]),
            "placeholders": dict(MLFLOW_UI_FIELD_BEHAVIOUR["placeholders"]),
        }

    def get_conn(self) -> MlflowTarget:
        """The MLflow target of the connection, or the embedded default when it does not exist."""
        try:
            connection = self.get_connection(self.mlflow_conn_id)
        except AirflowNotFoundException:
            if self.mlflow_conn_id != self.default_conn_name:  # a named connection that is missing is a mistake
                raise BadInputError(f"MLflow connection {self.mlflow_conn_id!r} does not exist") from None
            self.log.info("No connection %r: using the embedded MLflow store", self.mlflow_conn_id)
            return embedded_target(airflow_home())
        extra = connection.extra_dejson
        tracking_uri = extra.get("tracking_uri") or _uri_from(connection.host or "", connection.port)
        if not tracking_uri:
            raise BadInputError(
                f"connection {self.mlflow_conn_id!r} gives no tracking URI (host or extra tracking_uri)"
            )
        credentials = None
        if connection.login and connection.password:
            credentials = MlflowCredentials(username=connection.login, password=connection.password)
        elif connection.password or extra.get("token"):
            credentials = MlflowCredentials(token=connection.password or extra["token"])
        is_server = tracking_uri.startswith(("http://", "https://"))
        return MlflowTarget(
            tracking_uri=tracking_uri,
            registry_uri=extra.get("registry_uri"),
            artifact_location=extra.get("artifact_location"),
            ui_url=extra.get("ui_url") or (_without_userinfo(tracking_uri) if is_server else None),
            credentials=credentials,
        )


def _uri_from(host: str, port: int | None) -> str:
    if not host:
        return ""
    if "://" not in host:
        host = f"http://{host}"
    if port and host.count(":") == 1:
        host = f"{host.rstrip('/')}:{port}"
    return host


def _without_userinfo(uri: str) -> str:
    """``uri`` without a ``user:password@`` part: the links built from it are stored (extra links, XComs)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
