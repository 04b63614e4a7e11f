"""Test set-up: an isolated AIRFLOW_HOME (set before anything imports airflow) and shared fixtures."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

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
#: The test run's token: set by the first process (pytest-xdist's controller), inherited by its workers. It names
#: what the workers share: the template databases of the integration tier (tests/integration/stack.py).
RUN = os.environ.setdefault("MLC_TEST_RUN", secrets.token_hex(3))
#: Exists once a worker has made the run's template databases: the controller drops them when the run ends.
TEMPLATES_MADE = Path(tempfile.gettempdir()) / f"mlc-test-{RUN}.templates"

# Under pytest-xdist (``-n N --dist loadgroup``, as ``make test`` runs it), the suite is cut into units of work,
# each run whole, in order, on one worker (``TierScheduling``): each deployment is a unit with its ordered tests,
# the decision suite is one (its session-scoped champions are trained once), and every other module is one (its
# module-scoped fixtures are made once). See docs/integration-tests.md#how-the-suite-runs-in-parallel.

#: The order the units are handed out in: the deployments first (the longest chains, mostly waiting on their
#: servers), then the heaviest CPU-bound tiers, so that the units that start last are short.
UNIT_ORDER = ("tests/browser/", "tests/integration/", "tests/decisions/", "tests/e2e/", "tests/dags/")


def work_unit(nodeid: str) -> str:
    """The unit of work of a test, from its node id."""
    path = nodeid.split("::", 1)[0]
    if path.startswith("tests/integration/"):  # one deployment per executor: test_x[LocalExecutor]
        return "deployment-" + nodeid.rsplit("[", 1)[-1].rstrip("]")
    if path.startswith("tests/browser/"):
        return "deployment-browser"
    if path.startswith("tests/decisions/"):
        return "decisions"
    return path


def unit_rank(nodeid: str) -> int:
    return next((rank for rank, prefix in enumerate(UNIT_ORDER) if nodeid.startswith(prefix)), len(UNIT_ORDER))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a pytest-xdist worker, the collection in unit order (the controller hands the units out in it)."""
    if hasattr(config, "workerinput"):
        items.sort(key=lambda item: unit_rank(item.nodeid))  # stable: the tests of a unit keep their order


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: unknown when it is not loaded
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` by ``work_unit``.

    pytest-xdist 3.8 groups ``xdist_group`` marks by appending the group to ``item._nodeid``, which pytest 9.2 no
    longer reads: the marks are silently ignored. The units are therefore computed here, from the node ids.
    """
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class TierScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def __init__(self, config: pytest.Config, log: Any = None) -> None:
            super().__init__(config, log)
            config.option.loadscopereorder = False  # keep the collection's order, not the biggest units first

        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

        def _reschedule(self, node: Any) -> None:
            # A worker with a deployment's tests left gets nothing more until it holds the last one (it runs a
            # test once it holds the next, or is told to stop): the next unit waits for no deployment.
            pending = [
                nodeid
                for unit in self.assigned_work.get(node, {}).values()
                for nodeid, done in unit.items()
                if not done
            ]
            if len(pending) > 1 and any(work_unit(nodeid).startswith("deployment-") for nodeid in pending):
                return
            super()._reschedule(node)

    return TierScheduling(config, log)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_HOME, ignore_errors=True)
    if not hasattr(session.config, "workerinput") and TEMPLATES_MADE.exists():
        from tests.integration.stack import drop_templates

        drop_templates(RUN)
        TEMPLATES_MADE.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    return _HOME


def migrate(home: Path) -> None:
    airflow = Path(sys.executable).with_name("airflow")
    env = {**os.environ, "AIRFLOW_HOME": str(home)}
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=env)


@pytest.fixture(scope="session")
def airflow_db(request: pytest.FixtureRequest, airflow_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated Airflow metadata DB (SQLite) in the test AIRFLOW_HOME, as ``dag.test()`` needs.

    Under pytest-xdist every worker has a home and a database of its own; the first worker that needs one
    migrates a template in the run's shared temporary folder, and each copies it (a migration takes seconds of
    CPU, a copy none).
    """
    if not hasattr(request.config, "workerinput"):
        migrate(airflow_home)
        return airflow_home
    from filelock import FileLock

    template = tmp_path_factory.getbasetemp().parent / "airflow-sqlite-template"
    with FileLock(f"{template}.lock"):
        if not (template / "airflow.db").exists():
            template.mkdir(exist_ok=True)
            migrate(template)
    shutil.copyfile(template / "airflow.db", airflow_home / "airflow.db")
    return airflow_home


@pytest.fixture
def bikes() -> pd.DataFrame:  # noqa: F821 - pandas is imported lazily
    import pandas as pd

    return pd.read_csv(BIKES_CSV)
