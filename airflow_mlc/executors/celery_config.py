"""Airflow's Celery configuration, with the life-cycle phases' libraries loaded in each worker before its pool forks.

Set ``[celery] celery_config_options = airflow_mlc.executors.celery_config.CELERY_CONFIG``. Each
``airflow celery worker`` then imports :data:`~airflow_mlc.core.preload.PRELOAD_MODULES` once, as it starts
(Celery's ``worker_init`` signal, in the worker's main process); its pool processes, and the task processes
they fork, find them loaded. To add settings of your own, extend this dictionary in a module of yours and
name that module's dictionary instead; this module's import connects the preload.
"""

from __future__ import annotations

import gc
from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import worker_init

from airflow_mlc.core.preload import preload

#: Airflow's default Celery configuration, unchanged: importing this module is what adds the preload.
CELERY_CONFIG: dict[str, Any] = dict(DEFAULT_CELERY_CONFIG)


@worker_init.connect
def preload_in_worker(**_: Any) -> None:
    """Load the libraries in the worker's main process, before it starts its pool."""
    preload()
    # As Airflow's Celery worker does for its own preloads: keep the loaded objects out of the garbage collector's
    # reach until the pool has forked (Airflow unfreezes when the worker is ready), so the pool shares their pages.
    gc.freeze()
