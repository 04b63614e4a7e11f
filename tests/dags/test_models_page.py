"""The Models page's routes inside Airflow's own API app: sign-in, auth-manager checks, the rollback trigger.

The browser tier drives the same page in Chromium on a running API server with a real history; these tests
cover each route's answers on an empty history, in seconds.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from tests.conftest import DAGS_DIR

pytestmark = pytest.mark.dags


@pytest.fixture(scope="module")
def api(airflow_db: Path) -> Iterator[Any]:
    """Airflow's API app with the plugin mounted, the bikes DAGs known to the metadata DB."""
    from airflow.api_fastapi.app import create_app
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from fastapi.testclient import TestClient

    secret = pytest.MonkeyPatch()
    secret.setenv("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_urlsafe(32))  # signs the tokens and form tokens
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(DagBag(dag_folder=str(DAGS_DIR)), "dags-folder", None)
    try:
        with TestClient(create_app()) as client:
            yield client
    finally:
        secret.undo()


def token(role: str) -> dict[str, str]:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    jwt = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=role, role=role))
    return {"Authorization": f"Bearer {jwt}"}


@pytest.mark.parametrize("path", ["/mlc/", "/mlc/models/bikes", "/mlc/api/models/bikes", "/mlc/api/models"])
def test_no_signed_in_user_gets_no_data(api: Any, path: str) -> None:
    anonymous = api.get(path)
    assert anonymous.status_code == 401
    assert "bikes" not in anonymous.text
    forged = api.get(path, headers={"Authorization": "Bearer not-a-token"})
    assert forged.status_code in (401, 403) and "bikes" not in forged.text


def test_a_viewer_reads_the_model_but_gets_no_rollback_form(api: Any) -> None:
    listing = api.get("/mlc/", headers=token("viewer"))
    assert listing.status_code == 200 and 'data-model="bikes"' in listing.text
    page = api.get("/mlc/models/bikes", headers=token("viewer"))
    assert page.status_code == 200
    assert 'id="versions"' in page.text and 'id="rollback"' not in page.text
    data = api.get("/mlc/api/models/bikes", headers=token("viewer")).json()
    assert data["summary"]["name"] == "bikes" and data["versions"] == []
    assert set(data["summary"]["paused"]) == {f"mlc_bikes_{r}" for r in ("train", "monitor", "predict", "rollback")}


def test_the_dag_tab_leads_to_the_model_and_says_when_a_dag_is_no_model(api: Any) -> None:
    found = api.get("/mlc/dags/mlc_bikes_monitor", headers=token("viewer"), follow_redirects=False)
    assert found.status_code == 307 and found.headers["location"] == "/mlc/models/bikes"
    other = api.get("/mlc/dags/some_etl", headers=token("viewer"))
    assert other.status_code == 404 and "Not a model" in other.text
    assert api.get("/mlc/models/nope", headers=token("viewer")).status_code == 404


def test_a_user_without_read_access_to_one_of_its_dags_does_not_see_the_model(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.api_fastapi.app import get_auth_manager

    manager = get_auth_manager()
    allowed = manager.is_authorized_dag

    def deny_monitoring(*, method: str, details: Any = None, **kwargs: Any) -> bool:
        if details is not None and details.id == "mlc_bikes_monitor":
            return False
        return allowed(method=method, details=details, **kwargs)

    monkeypatch.setattr(manager, "is_authorized_dag", deny_monitoring)
    assert 'data-model="bikes"' not in api.get("/mlc/", headers=token("admin")).text
    assert api.get("/mlc/models/bikes", headers=token("admin")).status_code == 403
    assert api.get("/mlc/api/models/bikes", headers=token("admin")).status_code == 403


def form_token(page: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert match, "the rollback form carries its token"
    return match.group(1)


def test_the_rollback_form_triggers_the_rollback_dag_as_the_signed_in_user(api: Any) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    page = api.get("/mlc/models/bikes", headers=token("admin"))
    assert 'id="rollback"' in page.text
    form = {"version": "1", "reason": "over-predicts on rainy days", "csrf": form_token(page.text)}

    viewer = api.post("/mlc/models/bikes/rollback", data=form, headers=token("viewer"), follow_redirects=False)
    assert viewer.status_code == 403
    stale = api.post(
        "/mlc/models/bikes/rollback", data={**form, "csrf": "0" * 64}, headers=token("admin"), follow_redirects=False
    )
    assert stale.status_code == 403

    done = api.post("/mlc/models/bikes/rollback", data=form, headers=token("admin"), follow_redirects=False)
    assert done.status_code == 303
    run_id = re.search(r"rollback=([^#&]+)", done.headers["location"]).group(1)
    with create_session() as session:
        run = session.scalars(select(DagRun).where(DagRun.dag_id == "mlc_bikes_rollback")).one()
        assert (run.conf, run.triggering_user_name) == ({"target_version": "1", "reason": form["reason"]}, "admin")
        assert run.run_id == unquote(run_id)
    status = api.get(done.headers["location"], headers=token("admin"))
    assert 'id="rollback-status"' in status.text and 'data-state="queued"' in status.text


def test_the_page_never_shows_a_connection_secret(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cr3t-marker-password"
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT",
        f'{{"conn_type": "mlflow", "host": "{os.environ["AIRFLOW_HOME"]}", "login": "u", "password": "{secret}", '
        f'"extra": {{"tracking_uri": "sqlite:///{os.environ["AIRFLOW_HOME"]}/mlflow/mlflow.db"}}}}',
    )
    for path in ("/mlc/", "/mlc/models/bikes", "/mlc/api/models/bikes"):
        response = api.get(path, headers=token("admin"))
        assert response.status_code == 200 and secret not in response.text
