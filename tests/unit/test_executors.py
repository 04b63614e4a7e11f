"""The executor set-ups that preload the phases' libraries before the task processes are forked."""

from __future__ import annotations

import gc
from typing import Any

import pytest

pytestmark = pytest.mark.unit


def test_the_local_executor_preloads_before_it_forks_its_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.executors.local_executor import LocalExecutor

    from airflow_mlc.executors import local

    calls: list[str] = []
    monkeypatch.setattr(local, "preload", lambda: calls.append("preload"))
    monkeypatch.setattr(LocalExecutor, "start", lambda self: calls.append("fork the workers"))
    executor = local.PreloadingLocalExecutor(parallelism=2)

    executor.is_mp_using_fork = True
    executor.start()
    assert calls == ["preload", "fork the workers"]

    calls.clear()
    executor.is_mp_using_fork = False  # spawned workers would not inherit anything: no preload
    executor.start()
    assert calls == ["fork the workers"]


def test_the_celery_configuration_preloads_when_a_worker_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
    from celery.signals import worker_init

    from airflow_mlc.executors import celery_config

    assert celery_config.CELERY_CONFIG == DEFAULT_CELERY_CONFIG
    calls: list[Any] = []
    monkeypatch.setattr(celery_config, "preload", lambda: calls.append(gc.get_freeze_count()))
    try:
        worker_init.send(sender=None)
        frozen_after = gc.get_freeze_count()
    finally:
        gc.unfreeze()  # as Airflow's worker_ready handler does once the pool has forked

    assert len(calls) == 1
    assert frozen_after > 0  # the loaded objects are kept out of the collector's reach until the pool forks
