"""Preloading the phases' libraries in the process that forks the task processes."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from airflow_mlc.core.preload import PRELOAD_MODULES, preload

pytestmark = pytest.mark.unit


def test_every_listed_module_and_skops_are_loaded_in_a_fresh_interpreter() -> None:
    # preload() skips a module it cannot import (it only saves time), so a misspelt or vanished name would
    # silently cost every task its import again: each listed module must really load.
    script = (
        "import json, sys\n"
        "from airflow_mlc.core.preload import PRELOAD_MODULES, preload\n"
        "preload()\n"
        "print(json.dumps([m for m in (*PRELOAD_MODULES, 'skops.io') if m not in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)

    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    assert "could not preload" not in done.stderr


def test_a_module_that_fails_to_import_is_logged_and_the_rest_still_load(caplog: pytest.LogCaptureFixture) -> None:
    sys.modules.pop("this_module_does_not_exist_anywhere", None)
    with caplog.at_level(logging.WARNING, logger="airflow_mlc.core.preload"):
        preload(["this_module_does_not_exist_anywhere", "colorsys"])

    assert "colorsys" in sys.modules
    (warning,) = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert "could not preload this_module_does_not_exist_anywhere" in warning


def test_the_list_names_the_libraries_each_phase_imports() -> None:
    # The libraries behind the start-up cost of docs/performance.md: pandas in every phase, scikit-learn and
    # MLflow (with its SQL stores, for the embedded registry) in training and evaluation, Evidently in the
    # validation and monitoring reports.
    for library in ("pandas", "sklearn.ensemble", "mlflow", "mlflow.store.tracking.sqlalchemy_store", "evidently"):
        assert library in PRELOAD_MODULES
    assert len(set(PRELOAD_MODULES)) == len(PRELOAD_MODULES)
