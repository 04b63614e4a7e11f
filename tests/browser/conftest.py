"""The browser tier: a real Airflow carrying the provider's Models page, with a history made by real DAG runs.

One deployment (``site``, module-scoped, so that it stops as soon as the module's tests end; under pytest-xdist
the module is one unit of work, on a worker of its own, beside the other tiers): the LocalExecutor on a fresh
PostgreSQL database (a copy of the run's migrated template), the API server on loopback, a scheduler, a DAG
processor and a triggerer, started by the integration tier's helpers (``tests/integration/stack.py``). MLflow
is the embedded default: no ``mlflow_default`` connection, so the tasks and the API server's plugin share the
SQLite store and the artifacts under the Airflow home. The simple auth manager has two users, ``admin`` (role
admin) and ``viewer`` (role viewer).

The history, built once through the REST API before the first test, as ``scripts/demo.py`` builds it:

1. ``mlc_bikes_train`` on winter (2011-01-01 .. 2011-04-01): version 1 becomes champion;
2. ``mlc_bikes_monitor`` on the 28 days before 2011-04-01: no drift, no retraining request;
3. ``mlc_bikes_monitor`` on the 28 days before 2011-05-15: drift, the retraining asset event starts
   ``mlc_bikes_train`` by itself, and version 2 is promoted;
4. ``mlc_bikes_predict`` on 2011-05-15 .. 2011-05-22 with the champion, version 2.

Headless Chromium (Debian's ``chromium`` and ``chromium-driver``, installed by ``make browser-deps``) is driven
through Selenium with the driver at ``/usr/bin/chromedriver``; Selenium Manager never downloads anything.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import requests
import yaml

from tests.conftest import BIKES_CSV, BIKES_SPEC, ROOT
from tests.integration.conftest import DAG_IDS, SPEC_NAME
from tests.integration.rest import AirflowApi
from tests.integration.stack import ADMIN, Airflow, start_airflow, stop_together, wait_for

#: The second user of the deployment: it may read every page but change nothing.
VIEWER = ("viewer", "mlc-browser-viewer")
USERS = {ADMIN[0]: (ADMIN[1], "admin"), VIEWER[0]: (VIEWER[1], "viewer")}
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: One PNG per page the tests open, kept after the run (git ignores the folder).
SCREENSHOTS = ROOT / "test-artifacts" / "browser"

WINTER = {"window_start": "2011-01-01", "window_end": "2011-04-01"}
CALM_END, DRIFT_END = "2011-04-01", "2011-05-15"
NEXT_WEEK = {"window_start": "2011-05-15", "window_end": "2011-05-22"}
#: The monitoring windows the history runs: each chart has one point per window.
MONITORED_WINDOWS = 2


@dataclass
class History:
    """The run ids of the history, and how long each step took (seconds)."""

    train: str = ""
    calm: str = ""
    drift: str = ""
    retrain: str = ""
    predict: str = ""
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class Site:
    """The running deployment, its REST client (signed in as admin) and the history it holds."""

    airflow: Airflow
    api: AirflowApi
    history: History

    @property
    def url(self) -> str:
        return self.airflow.api_url

    def token(self, user: tuple[str, str]) -> str:
        """A JWT for ``user`` from the simple auth manager, as the UI's login gets one."""
        response = requests.post(f"{self.url}/auth/token", json={"username": user[0], "password": user[1]}, timeout=30)
        response.raise_for_status()
        return str(response.json()["access_token"])

    def mlflow(self) -> Any:
        """A client on the embedded MLflow store the tasks and the plugin share."""
        return store_client(self.airflow.home)


def store_client(home: Path) -> Any:
    """A client on the embedded MLflow store of the Airflow home ``home`` (both URIs explicit)."""
    import mlflow

    uri = f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def create_mlflow_store(home: Path) -> None:
    """Create the tables of the embedded MLflow store while Airflow starts.

    It is the store the first training task would create (``<home>/mlflow/mlflow.db``); MLflow's migrations
    take long on two busy cores, and here they run beside Airflow's instead of in the history's first run.
    """
    wait_for(home.is_dir, 300, "the Airflow home", interval=0.2)
    (home / "mlflow").mkdir(exist_ok=True)
    store_client(home).search_experiments()


def write_spec(folder: Path) -> Path:
    """The demo spec with its data file named absolutely, no schedule, and slices reported.

    Without a schedule the monitoring and prediction DAGs run only when triggered and training only on the
    retraining asset (or when triggered): unpausing them creates no run for today's interval, whose sensors
    would wait for data that never comes.
    """
    data = yaml.safe_load(BIKES_SPEC.read_text())
    data["source"]["path"] = str(BIKES_CSV)
    data["schedule"] = {}
    data["gates"]["slices"] = {"columns": ["workingday"]}  # reported on the Models page
    data["monitoring"]["wait"] = {"poke_interval_seconds": 5, "timeout_hours": 1}
    folder.mkdir()
    path = folder / f"{SPEC_NAME}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def build_history(api: AirflowApi) -> History:
    """Train, monitor twice (the second window starts a retraining by itself) and predict, each to success."""
    history = History()

    def timed(step: str, dag_id: str, conf: dict[str, Any]) -> str:
        started = time.monotonic()
        run_id = api.trigger(dag_id, conf)
        api.wait_for_run(dag_id, run_id)
        history.seconds[step] = round(time.monotonic() - started, 1)
        return run_id

    history.train = timed("train", DAG_IDS["train"], WINTER)
    history.calm = timed("monitor calm", DAG_IDS["monitor"], {"window_end": CALM_END})
    states = api.task_states(DAG_IDS["monitor"], history.calm)
    assert states["request_retraining"] == "skipped", states
    history.drift = timed("monitor drift", DAG_IDS["monitor"], {"window_end": DRIFT_END})
    assert api.task_states(DAG_IDS["monitor"], history.drift)["request_retraining"] == "success"

    started = time.monotonic()
    triggered = wait_for(lambda: api.runs(DAG_IDS["train"], "asset_triggered"), 120, "the asset-triggered training")
    assert len(triggered) == 1, triggered
    history.retrain = triggered[0].dag_run_id
    api.wait_for_run(DAG_IDS["train"], history.retrain)
    history.seconds["retrain"] = round(time.monotonic() - started, 1)

    history.predict = timed("predict", DAG_IDS["predict"], NEXT_WEEK)
    return history


@contextlib.contextmanager
def deployment(workdir: Path) -> Iterator[Site]:
    """The deployment with its history, torn down (processes stopped, database dropped) on exit."""
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        database = f"mlc_br_{secrets.token_hex(3)}_airflow"  # a copy of the run's migrated template
        specs = write_spec(workdir / "specs").parent
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            store = pool.submit(create_mlflow_store, workdir / "airflow")  # the home start_airflow makes
            # The processes must find the embedded store from their own home, whatever earlier tests set here.
            with mock.patch.dict(os.environ):
                for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
                    os.environ.pop(name, None)
                airflow = start_airflow(stack, workdir, database, specs, "LocalExecutor", users=USERS)
            stack.callback(stop_together, airflow.processes)  # first thing on exit
            store.result()
        api = AirflowApi(airflow.api_url, *ADMIN, diagnostics=airflow.task_logs)
        api.wait_for_dags(list(DAG_IDS.values()))
        for dag_id in DAG_IDS.values():  # the rollback DAG is triggered by the Models page
            api.unpause(dag_id)
        deployed = time.monotonic()
        history = build_history(api)
        history.seconds["deployment"] = round(deployed - started, 1)
        (workdir / "history.json").write_text(json.dumps(vars(history), indent=2))
        yield Site(airflow, api, history)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with deployment(tmp_path_factory.mktemp("browser")) as running:
        yield running


# Chromium ---------------------------------------------------------------------------------------------------


class Browser:
    """A headless Chromium on one Airflow: sign in through Airflow's login page, open pages, take screenshots."""

    def __init__(self, driver: Any, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url

    def open(self, path: str) -> None:
        self.driver.get(f"{self.base_url}{path}")

    def path(self) -> str:
        """The path (and query) of the current page."""
        return str(self.driver.current_url).removeprefix(self.base_url)

    def wait_for(self, css: str, timeout: float = 30) -> Any:
        """The first element matching ``css``, once it is present."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout).until(
            expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css)),
            f"no element {css!r} on {self.driver.current_url}",
        )

    def find_all(self, css: str, within: Any = None) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list((within or self.driver).find_elements(By.CSS_SELECTOR, css))

    def sign_in(self, user: tuple[str, str]) -> None:
        """Sign in through the simple auth manager's login form, as a person would; wait for the JWT cookie."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver.delete_all_cookies()
        self.open("/")  # the Airflow UI sends a visitor without a session to its login page
        name = self.wait_for("input[name='username']")
        assert "/auth/login" in self.path(), self.path()
        self.screenshot("login")
        name.send_keys(user[0])
        self.driver.find_element(By.CSS_SELECTOR, "input[name='password']").send_keys(user[1])
        self.driver.find_element(By.CSS_SELECTOR, "button[type='submit']").click()
        WebDriverWait(self.driver, 30).until(
            lambda driver: driver.get_cookie("_token") and "/auth/login" not in driver.current_url,
            f"{user[0]} was not signed in: still on {self.driver.current_url}",
        )

    def screenshot(self, name: str) -> Path:
        """The whole page (not only the window) as ``test-artifacts/browser/<name>.png``."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        size = self.driver.get_window_size()
        width, height = size["width"], size["height"]
        full = self.driver.execute_script(
            "return Math.max(document.body ? document.body.scrollHeight : 0, document.documentElement.scrollHeight)"
        )
        self.driver.set_window_size(width, min(max(int(full), height), 8000))
        self.driver.execute_script("window.scrollTo(0, 0)")
        try:
            self.driver.save_screenshot(str(path))
        finally:
            self.driver.set_window_size(width, height)
        return path


def chromium(profile: Path, log: Path) -> Any:
    """A headless Chromium from Debian's package, driven by Debian's chromedriver (no Selenium Manager)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: run `make browser-deps` (apt-get install chromium chromium-driver)")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not fetch a browser or a driver
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER), log_output=str(log)))
    driver.set_page_load_timeout(60)
    return driver


@contextlib.contextmanager
def browser_as(site: Site, user: tuple[str, str], workdir: Path) -> Iterator[Browser]:
    """A fresh Chromium (its own profile) signed in as ``user``; quit on exit."""
    driver = chromium(workdir / f"profile-{user[0]}", workdir / f"chromedriver-{user[0]}.log")
    try:
        browser = Browser(driver, site.url)
        browser.sign_in(user)
        yield browser
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def admin_browser(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    with browser_as(site, ADMIN, tmp_path_factory.mktemp("chromium")) as browser:
        yield browser


@pytest.fixture
def viewer_browser(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    with browser_as(site, VIEWER, tmp_path_factory.mktemp("chromium-viewer")) as browser:
        yield browser
