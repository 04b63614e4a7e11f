"""The Models page in headless Chromium, on the history of real DAG runs (see ``conftest``).

The tests run in order on one deployment: sign-in through Airflow's own login page, the page inside the Airflow
UI and on its own, every table and chart of the model page, the "Model" tab of the DAG pages, the refusals (no
credentials, a viewer's rollback), and last a rollback made through the page's form, which changes the registry.
Each page opened is saved as ``test-artifacts/browser/<name>.png``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

import pytest
import requests

from tests.browser.conftest import MONITORED_WINDOWS, VIEWER, Browser, Site
from tests.integration.conftest import DAG_IDS, SPEC_NAME
from tests.integration.stack import ADMIN, wait_for

pytestmark = pytest.mark.browser

MODELS = "/mlc/"
MODEL_PAGE = f"/mlc/models/{SPEC_NAME}"
MODEL_API = f"/mlc/api/models/{SPEC_NAME}"
ROLLBACK = f"/mlc/models/{SPEC_NAME}/rollback"
#: The columns the spec monitors for drift (dags/specs/bikes.yaml).
DRIFT_COLUMNS = ["temp", "atemp", "hum", "windspeed"]
#: The hourly rows of the week 2011-05-15 .. 2011-05-22.
WEEK_ROWS = 168
REASON = "browser tier: version 2 over-predicts on rainy days"


def text(element: Any) -> str:
    """What the element shows (``textContent``, so a cell outside the window counts too), trimmed."""
    return " ".join(str(element.get_attribute("textContent") or "").split())


def cell(browser: Browser, row: Any, css: str) -> str:
    found = browser.find_all(css, within=row)
    assert found, f"no {css!r} in the row {text(row)!r}"
    return text(found[0])


def href(browser: Browser, row: Any, css: str) -> str:
    found = browser.find_all(css, within=row)
    assert found, f"no link {css!r} in the row {text(row)!r}"
    return unquote(str(found[0].get_attribute("href") or ""))


def digits(shown: str) -> str:
    """The version number in a cell such as ``v2``; empty for ``none`` or a dash."""
    return re.sub(r"\D", "", shown)


def open_model_page(browser: Browser) -> None:
    browser.open(MODEL_PAGE)
    browser.wait_for("table#versions tbody tr[data-version]")


def rows_by(browser: Browser, css: str, attribute: str) -> dict[str, Any]:
    return {str(row.get_attribute(attribute)): row for row in browser.find_all(css)}


def test_history_was_made_by_real_runs(site: Site) -> None:
    client = site.mlflow()
    assert str(client.get_model_version_by_alias(SPEC_NAME, "champion").version) == "2"
    assert client.get_model_version(SPEC_NAME, "1").tags["mlc.run_id"] == site.history.train
    retrained = client.get_model_version(SPEC_NAME, "2")
    assert retrained.tags["mlc.run_id"] == site.history.retrain
    assert site.history.drift in retrained.tags["mlc.triggered_by"]


def test_sign_in_through_airflow_login_page(site: Site, admin_browser: Browser) -> None:
    token = admin_browser.driver.get_cookie("_token")
    assert token and token["value"]
    admin_browser.open("/")
    admin_browser.wait_for("nav, [role='navigation'], a[href]")
    admin_browser.screenshot("airflow-home")


def test_requests_without_credentials_get_no_data(site: Site) -> None:
    for path in (MODELS, MODEL_PAGE, MODEL_API):
        response = requests.get(f"{site.url}{path}", timeout=30, allow_redirects=False)
        assert response.status_code in (401, 403), (path, response.status_code, response.text[:300])
        for secret in ("data-model", "data-version", '"versions"', site.history.train, site.history.retrain):
            assert secret not in response.text, (path, secret)
    response = requests.post(
        f"{site.url}{ROLLBACK}", data={"version": "1", "reason": REASON}, timeout=30, allow_redirects=False
    )
    assert response.status_code in (401, 403), response.status_code
    response = requests.get(f"{site.url}{MODELS}", timeout=30, cookies={"_token": "not-a-jwt"})
    assert response.status_code in (401, 403), response.status_code


def test_models_page_inside_the_airflow_ui(admin_browser: Browser) -> None:
    admin_browser.open("/plugin/mlc-models")
    frame = admin_browser.wait_for("iframe", timeout=60)
    assert "/mlc" in str(frame.get_attribute("src")), frame.get_attribute("src")
    admin_browser.driver.switch_to.frame(frame)
    try:
        admin_browser.wait_for(f"table#models tbody tr[data-model='{SPEC_NAME}']")
    finally:
        admin_browser.driver.switch_to.default_content()
    admin_browser.screenshot("airflow-ui-models")


def test_models_list(admin_browser: Browser) -> None:
    admin_browser.open(MODELS)
    row = admin_browser.wait_for(f"table#models tbody tr[data-model='{SPEC_NAME}']")
    admin_browser.screenshot("models")

    assert "2" in cell(admin_browser, row, ".champion")
    cell(admin_browser, row, ".challenger")
    assert "rmse" in cell(admin_browser, row, ".gate-metric").lower()
    for css in (".monitoring", ".retraining", ".paused"):
        cell(admin_browser, row, css)
    link = admin_browser.find_all("a.model-link", within=row)
    assert link, text(row)
    link[0].click()
    admin_browser.wait_for("table#versions")
    assert admin_browser.path().startswith(MODEL_PAGE), admin_browser.path()


def test_versions_table(site: Site, admin_browser: Browser) -> None:
    open_model_page(admin_browser)
    admin_browser.screenshot("model")
    rows = rows_by(admin_browser, "table#versions tbody tr[data-version]", "data-version")

    assert sorted(rows) == ["1", "2"], sorted(rows)
    expected = {
        "1": ("manual", site.history.train, ("2011-01-01", "2011-04-01")),
        "2": ("drift", site.history.retrain, ("2011-02-14", "2011-05-15")),
    }
    for version, (trigger, run_id, window) in expected.items():
        row = rows[version]
        assert row.get_attribute("data-decision") == "promoted", (version, row.get_attribute("data-decision"))
        assert row.get_attribute("data-trigger") == trigger, (version, row.get_attribute("data-trigger"))
        shown = cell(admin_browser, row, ".window")
        assert all(day in shown for day in window), (version, shown)
        metric = cell(admin_browser, row, ".metric")
        assert "rmse" in metric.lower() and re.search(r"\d", metric), (version, metric)
        decision = cell(admin_browser, row, ".decision")
        assert "promot" in decision.lower() and len(decision) > len("promoted"), (version, decision)
        assert trigger in cell(admin_browser, row, ".trigger").lower()
        assert href(admin_browser, row, "a.mlflow-run")
        assert href(admin_browser, row, "a.mlflow-version")
        assert href(admin_browser, row, "a.model-card")
        assert "most important: " in cell(admin_browser, row, ".top-features")
        assert "worst slices: workingday=" in cell(admin_browser, row, ".slices"), version
        dag_run = href(admin_browser, row, "a.dag-run")
        assert DAG_IDS["train"] in dag_run and run_id in dag_run, (version, dag_run)
    # the retrained version was compared with the champion: its score, the champion's and the interval
    compared = cell(admin_browser, rows["2"], ".metric")
    assert len(re.findall(r"\d+(?:\.\d+)?", compared)) >= 5 and "v1" in compared, compared
    assert "vs the champion's" in cell(admin_browser, rows["2"], ".slices")


def test_timeline_of_champion_moves(admin_browser: Browser) -> None:
    open_model_page(admin_browser)
    rows = admin_browser.find_all("table#timeline tbody tr[data-move]")

    assert [row.get_attribute("data-move") for row in rows] == ["promotion", "promotion"], [text(r) for r in rows]
    moves = {digits(cell(admin_browser, row, ".to")): row for row in rows}
    assert sorted(moves) == ["1", "2"], sorted(moves)
    assert digits(cell(admin_browser, moves["2"], ".from")) == "1"
    assert digits(cell(admin_browser, moves["1"], ".from")) == ""
    for row in rows:
        for css in (".by", ".reason", ".when"):
            assert cell(admin_browser, row, css), (css, text(row))
    assert cell(admin_browser, moves["1"], ".by") == ADMIN[0]  # who triggered the training through the API
    retrained_by = cell(admin_browser, moves["2"], ".by")  # no user: what started the run, in words
    assert "DagRunType" not in retrained_by, retrained_by


def test_drift_charts_have_a_point_per_window(admin_browser: Browser) -> None:
    open_model_page(admin_browser)
    chart = admin_browser.wait_for("svg#drift-chart")
    admin_browser.driver.execute_script("arguments[0].scrollIntoView()", chart)
    admin_browser.screenshot("model-drift-chart")

    assert chart.get_attribute("data-windows") == str(MONITORED_WINDOWS)
    series = rows_by(admin_browser, "svg#drift-chart g.series[data-column]", "data-column")
    assert sorted(series) == sorted(DRIFT_COLUMNS)
    for column, group in series.items():
        assert len(admin_browser.find_all("circle.point", within=group)) == MONITORED_WINDOWS, column
    assert admin_browser.find_all("svg#drift-chart line.threshold")
    assert len(admin_browser.find_all("svg#drifted-share-chart circle.point")) == MONITORED_WINDOWS
    assert admin_browser.find_all("svg#drifted-share-chart line.threshold")


def test_quality_chart_has_a_point_per_labelled_window(admin_browser: Browser) -> None:
    open_model_page(admin_browser)
    chart = admin_browser.wait_for("svg#quality-chart")

    assert chart.get_attribute("data-windows") == str(MONITORED_WINDOWS)
    assert len(admin_browser.find_all("svg#quality-chart circle.point")) == MONITORED_WINDOWS
    assert admin_browser.find_all("svg#quality-chart line.baseline")
    assert admin_browser.find_all("svg#quality-chart line.tolerance")


def test_retraining_request_and_predictions(admin_browser: Browser) -> None:
    open_model_page(admin_browser)
    requests_ = admin_browser.find_all("table#retrain-requests tbody tr[data-outcome]")
    assert [row.get_attribute("data-outcome") for row in requests_] == ["promoted"], [text(r) for r in requests_]

    predictions = admin_browser.find_all("table#predictions tbody tr[data-rows][data-version]")
    assert [(row.get_attribute("data-rows"), row.get_attribute("data-version")) for row in predictions] == [
        (str(WEEK_ROWS), "2")
    ], [text(row) for row in predictions]


def test_model_api_gives_the_same_data(site: Site) -> None:
    token = site.token(ADMIN)
    response = requests.get(f"{site.url}{MODEL_API}", headers={"Authorization": f"Bearer {token}"}, timeout=30)

    assert response.status_code == 200, response.text[:500]
    data = response.json()
    assert sorted(str(version["version"]) for version in data["versions"]) == ["1", "2"], data.get("versions")
    cookie = requests.get(f"{site.url}{MODELS}", cookies={"_token": token}, timeout=30)
    assert cookie.status_code == 200 and "data-model" in cookie.text, cookie.status_code


def test_model_tab_of_a_dag_lands_on_the_model_page(admin_browser: Browser) -> None:
    admin_browser.open(f"/dags/{DAG_IDS['train']}")
    tab = wait_for(
        lambda: admin_browser.driver.find_elements("xpath", "//a[normalize-space(.)='Model']"),
        60,
        "the Model tab on the DAG page",
    )[0]
    admin_browser.screenshot("airflow-dag-page")
    tab.click()
    frame = admin_browser.wait_for("iframe", timeout=60)
    admin_browser.driver.switch_to.frame(frame)
    try:
        admin_browser.wait_for("table#versions")
        shown = admin_browser.driver.execute_script("return window.location.pathname")
    finally:
        admin_browser.driver.switch_to.default_content()
    assert shown == MODEL_PAGE, shown
    admin_browser.screenshot("airflow-dag-model-tab")

    admin_browser.open(f"/mlc/dags/{DAG_IDS['train']}")
    admin_browser.wait_for("table#versions")
    assert admin_browser.path().startswith(MODEL_PAGE), admin_browser.path()


def test_viewer_can_read_but_not_roll_back(site: Site, viewer_browser: Browser) -> None:
    open_model_page(viewer_browser)
    viewer_browser.screenshot("model-as-viewer")
    buttons = viewer_browser.find_all("form#rollback button#rollback-submit")
    assert not buttons or not buttons[0].is_enabled(), "the viewer is offered a working rollback form"

    token = site.token(VIEWER)
    # with a form token, so that a refusal can only be about the role (a viewer's page carries none)
    form = {"version": "1", "reason": REASON, "csrf": "0" * 64}
    for auth in ({"headers": {"Authorization": f"Bearer {token}"}}, {"cookies": {"_token": token}}):
        response = requests.post(f"{site.url}{ROLLBACK}", data=form, timeout=30, allow_redirects=False, **auth)
        assert response.status_code == 403, (auth.keys(), response.status_code, response.text[:300])
    assert site.api.runs(DAG_IDS["rollback"]) == []
    assert str(site.mlflow().get_model_version_by_alias(SPEC_NAME, "champion").version) == "2"


def test_rollback_through_the_page(site: Site, admin_browser: Browser) -> None:
    from selenium.webdriver.support.ui import Select

    open_model_page(admin_browser)
    form = admin_browser.wait_for("form#rollback")
    Select(admin_browser.find_all("select[name='version']", within=form)[0]).select_by_value("1")
    admin_browser.find_all("textarea[name='reason']", within=form)[0].send_keys(REASON)
    admin_browser.screenshot("rollback-form")
    admin_browser.find_all("button#rollback-submit", within=form)[0].click()

    status = admin_browser.wait_for("#rollback-status[data-run-id]")
    assert admin_browser.path().startswith(MODEL_PAGE), admin_browser.path()
    run_id = str(status.get_attribute("data-run-id"))

    def finished() -> str | None:
        admin_browser.driver.refresh()
        state = str(admin_browser.wait_for("#rollback-status").get_attribute("data-state"))
        assert state != "failed", site.airflow.task_logs()
        return state if state == "success" else None

    wait_for(finished, 240, f"the rollback run {run_id} to succeed on the page", interval=3)
    admin_browser.screenshot("model-after-rollback")

    rollbacks = admin_browser.find_all("table#timeline tbody tr[data-move='rollback']")
    assert len(rollbacks) == 1, [text(row) for row in rollbacks]
    row = rollbacks[0]
    assert (digits(cell(admin_browser, row, ".from")), digits(cell(admin_browser, row, ".to"))) == ("2", "1")
    assert cell(admin_browser, row, ".by") == ADMIN[0]
    assert REASON in cell(admin_browser, row, ".reason")
    assert str(site.mlflow().get_model_version_by_alias(SPEC_NAME, "champion").version) == "1"

    run = site.api.dag_runs.get_dag_run(DAG_IDS["rollback"], run_id)
    assert run.triggering_user_name == ADMIN[0]
    rendered = site.api.task_instances.get_task_instance(DAG_IDS["rollback"], run_id, "rollback").rendered_fields
    assert str(rendered["target_version"]) == "1" and rendered["reason"] == REASON, rendered
