"""Test set-up: an isolated AIRFLOW_HOME (set before anything imports airflow) and shared fixtures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DAGS_DIR = ROOT / "dags"
BIKES_CSV = DAGS_DIR / "data" / "bikeshare_hourly_2011.csv"
BIKES_SPEC = DAGS_DIR / "specs" / "bikes.yaml"

_HOME = Path(tempfile.mkdtemp(prefix="mlc-test-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_DIR)
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ.pop("MLC_SPECS_DIR", None)
os.environ.pop("MLC_ARTIFACT_ROOT", None)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    return _HOME


@pytest.fixture(scope="session")
def airflow_db(airflow_home: Path) -> Path:
    """A migrated Airflow metadata DB (SQLite) in the test AIRFLOW_HOME, as ``dag.test()`` needs."""
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())
    return airflow_home


@pytest.fixture
def bikes() -> pd.DataFrame:  # noqa: F821 - pandas is imported lazily
    import pandas as pd

    return pd.read_csv(BIKES_CSV)
