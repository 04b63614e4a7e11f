"""Loading the libraries the life-cycle phases use once, in a long-lived worker, before it forks task processes.

A task process of the LocalExecutor (and of a Celery worker's pool) is a fork of a long-lived worker
process. Whatever that worker has imported, the task has for free: a phase that would import pandas,
scikit-learn, MLflow, skops and Evidently (one to three seconds in every task) finds them loaded.
:func:`preload` imports them; :mod:`airflow_mlc.executors` calls it before the executor forks its workers.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Sequence

log = logging.getLogger(__name__)

#: What the phases import, libraries and the provider's own modules, in an order that loads each once.
PRELOAD_MODULES: tuple[str, ...] = (
    "numpy",
    "pandas",
    "pyarrow.parquet",
    "sklearn.compose",
    "sklearn.dummy",
    "sklearn.ensemble",
    "sklearn.impute",
    "sklearn.inspection",
    "sklearn.linear_model",
    "sklearn.metrics",
    "sklearn.model_selection",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "mlflow",
    "mlflow.data.pandas_dataset",
    "mlflow.models",
    "mlflow.tracking",
    "mlflow.sklearn",
    "mlflow.pyfunc",
    # The embedded SQL store's modules: about a second to import, in every task that opens the registry.
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "evidently",
    "evidently.metrics",
    "evidently.tests",
    "fairlearn.metrics",
    "airflow_mlc.core.ingest",
    "airflow_mlc.core.validate",
    "airflow_mlc.core.prepare",
    "airflow_mlc.core.train",
    "airflow_mlc.core.evaluate",
    "airflow_mlc.core.governance",
    "airflow_mlc.core.registry",
    "airflow_mlc.core.drift",
    "airflow_mlc.core.predict",
    "airflow_mlc.core.retrain",
    "airflow_mlc.core.rollout",
    "airflow_mlc.dag_factory",
)


def preload(modules: Sequence[str] = PRELOAD_MODULES) -> float:
    """Import ``modules`` and skops (through :func:`~airflow_mlc.core.skops_import.import_skops`).

    A module that fails to import is logged and skipped: preloading only saves time, and the phase that
    needs the module reports the failure itself.

    Returns:
        The seconds it took.
    """
    from airflow_mlc.core.skops_import import import_skops

    started = time.perf_counter()
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as error:  # noqa: BLE001 - a module that cannot load is the phase's error to report
            log.warning("airflow-mlc: could not preload %s: %s", name, error)
    try:
        import_skops()
    except Exception as error:  # noqa: BLE001
        log.warning("airflow-mlc: could not preload skops: %s", error)
    elapsed = time.perf_counter() - started
    log.info("airflow-mlc: preloaded the phases' libraries in %.1f s", elapsed)
    return elapsed
