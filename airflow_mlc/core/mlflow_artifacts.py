"""MLflow's HTTP artifact repositories, with worker threads that keep the caller's MLflow credentials.

MLflow downloads the files of an artifact folder (a model) in parallel, in a thread pool of its artifact
repository. Threads of a ``ThreadPoolExecutor`` do not inherit the context of the thread that submits the
work, so they would not see the credentials of ``core.mlflow_auth``. The repositories here are MLflow's own
for the ``http``, ``https`` and ``mlflow-artifacts`` schemes, whose pools run each task in a copy of the
submitting thread's context. They are registered through MLflow's entry-point group
``mlflow.artifact_repository`` and keep MLflow's class names.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from mlflow.store.artifact import http_artifact_repo, mlflow_artifacts_repo


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A thread pool whose tasks run in a copy of the context of the thread that submitted them."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Schedule ``fn(*args, **kwargs)`` in a copy of the current context."""
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


def _context_thread_pool(repository: Any) -> ThreadPoolExecutor:
    """The pool MLflow's ``ArtifactRepository._create_thread_pool`` makes, tasks in the submitter's context."""
    return ContextThreadPoolExecutor(
        max_workers=repository.max_workers, thread_name_prefix=f"Mlflow{type(repository).__name__}"
    )


class HttpArtifactRepository(http_artifact_repo.HttpArtifactRepository):
    """MLflow's repository of ``http://`` and ``https://`` artifact URIs, its threads in the caller's context."""

    def _create_thread_pool(self) -> ThreadPoolExecutor:
        return _context_thread_pool(self)


class MlflowArtifactsRepository(mlflow_artifacts_repo.MlflowArtifactsRepository):
    """MLflow's repository of ``mlflow-artifacts:`` URIs (artifacts through the tracking server), likewise."""

    def _create_thread_pool(self) -> ThreadPoolExecutor:
        return _context_thread_pool(self)
