"""MLflow credentials per execution context, never in the process environment.

MLflow reads its credentials from process-wide variables (``MLFLOW_TRACKING_USERNAME`` ...), which every
thread of a process shares: in a triggerer that runs the probes of many sensors, or in the API server, one
connection would send another's credentials. Here the credentials live in a context variable instead, and
MLflow's public plugin point for request headers (the entry-point group ``mlflow.request_header_provider``)
adds them to each request as its ``Authorization`` header: ``Basic`` for a login and password, ``Bearer``
for a token.

A context variable is per thread and per asyncio task: ``asyncio.to_thread`` runs its function in a copy of
the caller's context, so each probe of a trigger sees only the credentials it set itself. MLflow's own
worker threads (parallel artifact downloads) get the context of the thread that submitted the work through
the artifact repositories of ``core.mlflow_artifacts``.

This module imports nothing heavy: the hook builds credentials while DAG files are parsed.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field

from airflow_mlc.errors import MLCError

#: The header MLflow's server (and a proxy in front of it) reads the credentials from.
AUTHORIZATION = "Authorization"


@dataclass(frozen=True)
class MlflowCredentials:
    """The credentials of one MLflow connection: a login and password (basic auth), or a bearer token.

    Attributes:
        username: The login of basic auth.
        password: The password of basic auth.
        token: A bearer token, used when there is no login and password.
    """

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    @property
    def authorization(self) -> str | None:
        """The ``Authorization`` header's value: ``Basic <base64 login:password>``, ``Bearer <token>``, or None."""
        if self.username and self.password:
            pair = f"{self.username}:{self.password}".encode()
            return "Basic " + base64.standard_b64encode(pair).decode("ascii")
        if self.token:
            return f"Bearer {self.token}"
        return None


_CURRENT: ContextVar[MlflowCredentials | None] = ContextVar("airflow_mlc_mlflow_credentials", default=None)


def current_credentials() -> MlflowCredentials | None:
    """The credentials MLflow requests of the current context carry, or None."""
    return _CURRENT.get()


def set_credentials(credentials: MlflowCredentials | None) -> Token[MlflowCredentials | None]:
    """Make ``credentials`` those of the MLflow requests of the current context (None: no credentials).

    Args:
        credentials: The connection's credentials.

    Returns:
        A token that ``reset_credentials`` takes to restore the previous ones.
    """
    return _CURRENT.set(credentials)


def reset_credentials(token: Token[MlflowCredentials | None]) -> None:
    """Restore the credentials in place before the ``set_credentials`` call that returned ``token``."""
    _CURRENT.reset(token)


@contextmanager
def credentials_scope(credentials: MlflowCredentials | None) -> Iterator[None]:
    """The MLflow requests made inside the block carry ``credentials``; the previous ones come back after it."""
    token = set_credentials(credentials)
    try:
        yield
    finally:
        reset_credentials(token)


def check_provider_registered() -> None:
    """Fail when MLflow would not send the current credentials (the header provider is not registered).

    The provider is registered by this package's entry point: an installation without its metadata (a
    copied source tree, a stale editable install) would otherwise send requests without credentials.

    Raises:
        MLCError: MLflow's resolved request headers lack the credentials' ``Authorization`` header.
    """
    credentials = current_credentials()
    expected = credentials.authorization if credentials is not None else None
    if expected is None:
        return
    from mlflow.tracking.request_header.registry import resolve_request_headers

    if expected not in resolve_request_headers().get(AUTHORIZATION, ""):
        raise MLCError(
            "MLflow would send no credentials: the request header provider of airflow-mlc (entry point group "
            "'mlflow.request_header_provider') is not registered; reinstall the airflow-mlc package"
        )


class MlflowCredentialsHeaderProvider:
    """MLflow's request header provider that sends the current context's credentials.

    It follows MLflow's ``RequestHeaderProvider`` interface (``in_context`` and ``request_headers``) and
    is registered through the entry-point group ``mlflow.request_header_provider``. MLflow adds the
    headers to every request of its REST client and of its HTTP artifact repository. Credentials that
    MLflow finds itself (its ``MLFLOW_TRACKING_*`` variables, ``~/.mlflow/credentials``) replace them.
    """

    def in_context(self) -> bool:
        """Whether the current context has credentials to send."""
        credentials = _CURRENT.get()
        return credentials is not None and credentials.authorization is not None

    def request_headers(self) -> dict[str, str]:
        """``{"Authorization": ...}`` for the current context's credentials; empty without any."""
        credentials = _CURRENT.get()
        value = credentials.authorization if credentials is not None else None
        return {AUTHORIZATION: value} if value else {}
