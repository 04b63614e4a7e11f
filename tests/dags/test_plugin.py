"""The Models page plugin: registered through the provider, light to import, listed by Airflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.dags.test_dag_files import HEAVY

pytestmark = pytest.mark.dags


def test_the_package_registers_the_plugin_through_its_entry_point() -> None:
    from importlib.metadata import entry_points

    from airflow_mlc.ui.plugin import MLCPlugin

    (entry,) = [e for e in entry_points(group="airflow.plugins") if e.value.startswith("airflow_mlc.")]
    assert entry.load() is MLCPlugin


def test_airflow_lists_the_plugin_with_its_app_and_views() -> None:
    airflow = Path(sys.executable).with_name("airflow")
    out = subprocess.run(
        [str(airflow), "plugins", "-o", "json"], capture_output=True, text=True, env=os.environ.copy(), check=True
    )
    (plugin,) = [p for p in json.loads(out.stdout[out.stdout.index("[") :]) if p["name"] == "airflow_mlc"]
    assert "/mlc" in str(plugin["fastapi_apps"])
    views = str(plugin["external_views"])
    assert "'destination': 'nav'" in views and "mlc-models" in views
    assert "/mlc/dags/{DAG_ID}" in views and "'destination': 'dag'" in views


def test_loading_the_plugin_builds_no_app_and_loads_no_heavy_library() -> None:
    """Task processes load plugins too: the app and what it reads wait for the first request."""
    code = textwrap.dedent(
        f"""
        import sys
        from airflow_mlc.ui.plugin import MLCPlugin
        print([m for m in (*{HEAVY!r}, "airflow_mlc.ui.app", "fastapi") if m in sys.modules])
        """
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
