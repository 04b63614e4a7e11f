"""DAG files import cleanly and cheaply; the provider metadata is valid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.conftest import BIKES_SPEC, DAGS_DIR, ROOT

pytestmark = pytest.mark.dags
HEAVY = ("mlflow", "sklearn", "pandas", "pyarrow", "evidently", "scipy")


def dag_bag(specs_dir: Path | None = None):
    from airflow.dag_processing.dagbag import DagBag

    if specs_dir is not None:
        os.environ["MLC_SPECS_DIR"] = str(specs_dir)
    try:
        return DagBag(dag_folder=str(DAGS_DIR))
    finally:
        os.environ.pop("MLC_SPECS_DIR", None)


def test_every_spec_yields_its_training_dag() -> None:
    bag = dag_bag()
    assert bag.import_errors == {}
    dag = bag.dags["mlc_bikes_train"]
    assert [t.task_id for t in dag.topological_sort()] == [
        "ingest",
        "validate",
        "prepare",
        "train",
        "evaluate",
        "register",
    ]
    assert set(dag.params) == {
        "window_start",
        "window_end",
        "gate_max",
        "gate_min",
        "min_improvement",
        "dry_run",
        "force_promote",
    }
    assert dag.params["gate_max"] == 150
    assert dag.get_task("register").upstream_task_ids == {"train", "evaluate"}


def test_training_runs_on_its_schedule_or_on_the_retraining_asset() -> None:
    from airflow.sdk import Asset, AssetOrTimeSchedule

    dag = dag_bag().dags["mlc_bikes_train"]
    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    assert dag.timetable.timetable.expression == "0 0 * * 0"
    assert list(dag.timetable.asset_condition.objects) == [Asset("mlc://bikes/retrain")]


def test_every_spec_yields_its_monitoring_dag() -> None:
    dag = dag_bag().dags["mlc_bikes_monitor"]
    assert [t.task_id for t in dag.topological_sort()] == [
        "wait_for_data",
        "ingest",
        "drift",
        "quality",
        "request_retraining",
    ]
    assert set(dag.params) == {"window_start", "window_end", "force_retrain"}
    assert dag.timetable.expression == "0 0 * * *"
    sensor = dag.get_task("wait_for_data")
    assert sensor.deferrable and sensor.lookback_days == 28 and sensor.prefer_data_interval
    assert [a.uri for a in dag.get_task("request_retraining").outlets] == ["mlc://bikes/retrain"]
    assert dag.max_active_runs == 1


def test_every_spec_yields_its_prediction_and_rollback_dags() -> None:
    bag = dag_bag()
    predict = bag.dags["mlc_bikes_predict"]
    assert predict.get_task("predict").upstream_task_ids == {"wait_for_data", "wait_for_champion"}
    assert set(predict.params) == {"window_start", "window_end", "model_version"}
    assert predict.timetable.expression == "0 0 * * *"
    assert predict.get_task("wait_for_data").lookback_days == 1
    rollback = bag.dags["mlc_bikes_rollback"]
    assert [t.task_id for t in rollback.tasks] == ["rollback"]
    assert set(rollback.params) == {"target_version", "reason"}
    assert type(rollback.timetable).__name__ == "NullTimetable"  # manual only


def test_a_bad_spec_is_an_import_error_naming_file_and_field(tmp_path: Path) -> None:
    data = yaml.safe_load(BIKES_SPEC.read_text())
    data["gates"]["metirc"] = data["gates"].pop("metric")
    data["source"]["path"] = str(DAGS_DIR / "data" / "bikeshare_hourly_2011.csv")
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump(data))
    bag = dag_bag(tmp_path)
    [(file, error)] = bag.import_errors.items()
    assert file.endswith("mlc_dags.py")
    assert str(tmp_path / "typo.yaml") in error
    assert "gates.metirc: unknown field" in error


def test_parsing_the_dags_loads_no_heavy_library() -> None:
    code = textwrap.dedent(
        f"""
        import glob, importlib.util, sys
        for path in sorted(glob.glob({str(DAGS_DIR)!r} + "/*.py")):
            spec = importlib.util.spec_from_file_location("dagfile", path)
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
        print([m for m in {HEAVY!r} if m in sys.modules])
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=os.environ.copy()
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_provider_info_matches_airflows_schema() -> None:
    import importlib.resources

    import jsonschema

    from airflow_mlc.get_provider_info import get_provider_info

    schema = json.loads(importlib.resources.files("airflow").joinpath("provider_info.schema.json").read_text())
    info = get_provider_info()
    jsonschema.validate(info, schema)
    for dotted in [*info["extra-links"], *(c["hook-class-name"] for c in info["connection-types"])]:
        module, _, name = dotted.rpartition(".")
        assert hasattr(__import__(module, fromlist=[name]), name), dotted


def test_airflow_lists_the_provider_and_its_connection_type() -> None:
    airflow = Path(sys.executable).with_name("airflow")
    env = os.environ.copy()
    providers = subprocess.run(
        [str(airflow), "providers", "list", "-o", "json"], capture_output=True, text=True, env=env, check=True
    )
    assert any(p["package_name"] == "airflow-mlc" for p in json.loads(providers.stdout))
    hooks = subprocess.run(
        [str(airflow), "providers", "hooks", "-o", "json"], capture_output=True, text=True, env=env, check=True
    )
    assert any(h.get("connection_type") == "mlflow" for h in json.loads(hooks.stdout))


def test_the_package_ships_its_type_marker() -> None:
    assert (ROOT / "airflow_mlc" / "py.typed").exists()
