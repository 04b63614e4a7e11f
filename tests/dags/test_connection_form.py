"""The ``mlflow`` connection form as the API server serves it to the UI, with no wtforms installed.

Airflow 3.3 builds the connection form (``/ui/connections/hook_meta``) from the provider info; a hook's
``get_ui_field_behaviour`` is only read when wtforms is importable. The API app runs in a fresh interpreter so
its providers manager, plugins and auth manager start as they do in ``airflow api-server``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.dags

SERVER = textwrap.dedent(
    """
    import importlib.util, json, sys

    from fastapi.testclient import TestClient

    from airflow_mlc.hooks.mlflow import MLflowHook

    # Whatever the hook says must not reach the form: the provider info is the source.
    MLflowHook.get_ui_field_behaviour = classmethod(
        lambda cls: {"hidden_fields": ["host"], "relabeling": {"host": "from the hook"}, "placeholders": {}}
    )

    from airflow.api_fastapi.app import create_app

    client = TestClient(create_app())
    anonymous = client.get("/ui/connections/hook_meta").status_code
    login = client.post("/auth/token", json={"username": "admin", "password": sys.argv[1]})
    login.raise_for_status()
    headers = {"Authorization": "Bearer " + login.json()["access_token"]}
    response = client.get("/ui/connections/hook_meta", headers=headers)
    response.raise_for_status()
    print(json.dumps({
        "wtforms": importlib.util.find_spec("wtforms") is not None,
        "anonymous": anonymous,
        "types": [entry["connection_type"] for entry in response.json()],
        "mlflow": next((e for e in response.json() if e["connection_type"] == "mlflow"), None),
    }))
    """
)


@pytest.fixture(scope="module")
def hook_meta(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What ``GET /ui/connections/hook_meta`` of the real API app answers a signed-in admin."""
    passwords = tmp_path_factory.mktemp("auth") / "passwords.json"
    passwords.write_text(json.dumps({"admin": "form-test"}))
    env = {
        **os.environ,
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
    }
    out = subprocess.run(
        [sys.executable, "-c", SERVER, "form-test"], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_api_server_has_no_wtforms_and_asks_for_a_sign_in(hook_meta: dict[str, Any]) -> None:
    assert hook_meta["wtforms"] is False, "wtforms is installed: the form test below still holds, update this one"
    assert hook_meta["anonymous"] == 401


def test_the_mlflow_form_relabels_hides_and_explains_its_fields(hook_meta: dict[str, Any]) -> None:
    entry = hook_meta["mlflow"]
    assert entry is not None, f"no mlflow connection type among {hook_meta['types']}"
    assert entry["hook_class_name"] == "airflow_mlc.hooks.mlflow.MLflowHook"
    assert entry["hook_name"] == "MLflow"
    fields = entry["standard_fields"]
    assert fields["url_schema"]["hidden"] is True
    assert fields["host"] == {"hidden": False, "title": "Tracking URI", "placeholder": "http://mlflow:5000"}
    assert fields["login"]["title"] == "Username"
    assert fields["password"]["title"] == "Password or token"
    assert fields["password"]["placeholder"].startswith("basic-auth password")
    assert fields["port"]["placeholder"]


def test_the_mlflow_form_has_a_field_per_extra(hook_meta: dict[str, Any]) -> None:
    extras = hook_meta["mlflow"]["extra_fields"]
    assert set(extras) == {"registry_uri", "artifact_location", "ui_url", "token"}
    assert extras["registry_uri"]["schema"]["title"] == "Registry URI"
    assert extras["token"]["schema"]["format"] == "password"  # masked in the form
    assert all(field["value"] is None for field in extras.values())


def test_the_hook_and_the_provider_info_describe_one_form() -> None:
    import importlib.resources

    import jsonschema

    from airflow_mlc.get_provider_info import get_provider_info
    from airflow_mlc.hooks.mlflow import MLflowHook

    (entry,) = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == "mlflow"]
    schema = json.loads(importlib.resources.files("airflow").joinpath("provider.yaml.schema.json").read_text())
    jsonschema.validate(entry, schema["properties"]["connection-types"]["items"])
    declared = entry["ui-field-behaviour"]
    assert MLflowHook.get_ui_field_behaviour() == {
        "hidden_fields": declared["hidden-fields"],
        "relabeling": declared["relabeling"],
        "placeholders": declared["placeholders"],
    }
