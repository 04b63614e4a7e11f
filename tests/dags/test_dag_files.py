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


def specs_folder(folder: Path) -> Path:
    """A valid spec (``bikes.yaml``), one that breaks a rule (``gates.yaml``) and one that is not YAML."""
    data = yaml.safe_load(BIKES_SPEC.read_text())
    data["source"]["path"] = str(DAGS_DIR / "data" / "bikeshare_hourly_2011.csv")
    (folder / "bikes.yaml").write_text(yaml.safe_dump(data))
    data["name"] = "bikes_strict"
    data["gates"].update(min=200, max=150)
    (folder / "gates.yaml").write_text(yaml.safe_dump(data))
    (folder / "not yaml.yml").write_text("name: broken\n  task: [regression\n")
    return folder


def test_an_invalid_spec_hides_no_other_model(tmp_path: Path) -> None:
    bag = dag_bag(specs_folder(tmp_path))
    assert bag.import_errors == {}
    assert set(bag.dags) == {
        "mlc_bikes_train",
        "mlc_bikes_monitor",
        "mlc_bikes_predict",
        "mlc_bikes_rollback",
        "mlc_invalid_spec_gates",
        "mlc_invalid_spec_not_yaml",
    }


def test_an_invalid_spec_is_a_placeholder_dag_naming_file_field_and_problem(tmp_path: Path) -> None:
    bag = dag_bag(specs_folder(tmp_path))
    dag = bag.dags["mlc_invalid_spec_gates"]
    file = str(tmp_path / "gates.yaml")
    problem = "gates.min (200) is above gates.max (150)"
    assert set(dag.tags) == {"mlc", "invalid-spec"}
    assert type(dag.timetable).__name__ == "NullTimetable"  # manual only
    for text in (dag.description, dag.doc_md):
        assert f"{file}: gates: {problem}" in text
    [task] = dag.tasks
    assert task.retries == 0

    broken = bag.dags["mlc_invalid_spec_not_yaml"]
    assert f"{tmp_path / 'not yaml.yml'}: cannot read the spec" in broken.description
    assert "line 2, column 7" in broken.doc_md


def test_the_placeholder_task_fails_at_once_with_the_spec_error(tmp_path: Path) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    [task] = dag_bag(specs_folder(tmp_path)).dags["mlc_invalid_spec_gates"].tasks
    with pytest.raises(AirflowFailException) as failure:
        task.execute(context={})
    assert str(failure.value).startswith(f"{tmp_path / 'gates.yaml'}: gates: gates.min (200) is above gates.max")


def test_triggering_the_placeholder_fails_its_task_once(
    tmp_path: Path, airflow_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_mlc.testing import run_dag, task_states

    monkeypatch.setenv("MLC_SPECS_DIR", str(specs_folder(tmp_path)))
    run = run_dag("mlc_invalid_spec_gates", DAGS_DIR)
    assert run.state == "failed"
    assert task_states(run) == {"invalid_spec": "failed"}


def test_a_schedule_airflow_cannot_parse_is_an_invalid_spec_too(tmp_path: Path) -> None:
    data = yaml.safe_load(BIKES_SPEC.read_text())
    data["source"]["path"] = str(DAGS_DIR / "data" / "bikeshare_hourly_2011.csv")
    data["schedule"]["monitor"] = "@fortnightly"
    (tmp_path / "bikes.yaml").write_text(yaml.safe_dump(data))
    bag = dag_bag(tmp_path)
    assert bag.import_errors == {}
    assert list(bag.dags) == ["mlc_invalid_spec_bikes"]  # and no half of the model's DAGs
    assert (
        f"{tmp_path / 'bikes.yaml'}: schedule.monitor: '@fortnightly'" in bag.dags["mlc_invalid_spec_bikes"].description
    )


def test_a_spec_whose_dags_fail_to_build_leaves_no_half_built_dag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_mlc import dag_factory

    def broken(spec):
        raise RuntimeError("no prediction DAG today")

    builders = (dag_factory.training_dag, dag_factory.monitoring_dag, broken, dag_factory.rollback_dag)
    monkeypatch.setattr(dag_factory, "SPEC_DAG_BUILDERS", builders)
    folder = specs_folder(tmp_path)
    (folder / "gates.yaml").unlink()
    bag = dag_bag(folder)
    assert bag.import_errors == {}
    assert set(bag.dags) == {"mlc_invalid_spec_bikes", "mlc_invalid_spec_not_yaml"}
    description = bag.dags["mlc_invalid_spec_bikes"].description
    assert f"{folder / 'bikes.yaml'}: (top level): its DAGs cannot be built: RuntimeError: no prediction" in description


def parsing_for(monkeypatch: pytest.MonkeyPatch, dag_id: str) -> None:
    """Parse as a task process of ``dag_id`` does: Airflow names the DAG in the parsing context."""
    from airflow.sdk.definitions.context import _AIRFLOW_PARSING_CONTEXT_DAG_ID

    monkeypatch.setenv(_AIRFLOW_PARSING_CONTEXT_DAG_ID, dag_id)


def two_models_and_invalid_specs(folder: Path) -> Path:
    """``specs_folder`` plus a second valid spec, ``other``."""
    specs_folder(folder)
    data = yaml.safe_load((folder / "bikes.yaml").read_text())
    data["name"] = "other"
    (folder / "other.yaml").write_text(yaml.safe_dump(data))
    return folder


def test_a_task_process_builds_only_the_dags_of_its_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = two_models_and_invalid_specs(tmp_path)
    parsing_for(monkeypatch, "mlc_other_predict")
    bag = dag_bag(folder)
    assert bag.import_errors == {}
    assert set(bag.dags) == {"mlc_other_train", "mlc_other_monitor", "mlc_other_predict", "mlc_other_rollback"}
    assert bag.dags["mlc_other_predict"].get_task("predict").upstream_task_ids == {"wait_for_data", "wait_for_champion"}


def test_a_task_process_of_a_placeholder_dag_finds_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = two_models_and_invalid_specs(tmp_path)
    parsing_for(monkeypatch, "mlc_invalid_spec_gates")
    bag = dag_bag(folder)
    assert bag.import_errors == {}
    assert "gates.min (200) is above gates.max (150)" in bag.dags["mlc_invalid_spec_gates"].description
    [task] = bag.dags["mlc_invalid_spec_gates"].tasks
    assert task.task_id == "invalid_spec"


@pytest.mark.parametrize("dag_id", ["some_other_dag", "mlc_bikes_retrain", "mlc_invalid_spec_nothing"])
def test_a_task_process_of_an_unknown_dag_finds_none(
    dag_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = two_models_and_invalid_specs(tmp_path)
    parsing_for(monkeypatch, dag_id)
    bag = dag_bag(folder)
    assert bag.import_errors == {}
    assert dag_id not in bag.dags
    if not dag_id.startswith("mlc_invalid_spec_"):  # it may be a placeholder only if it says so
        assert bag.dags == {}


def test_without_a_parsing_context_every_dag_is_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.definitions.context import _AIRFLOW_PARSING_CONTEXT_DAG_ID

    monkeypatch.delenv(_AIRFLOW_PARSING_CONTEXT_DAG_ID, raising=False)
    bag = dag_bag(two_models_and_invalid_specs(tmp_path))
    assert len(bag.dags) == 10  # two models' four DAGs and two placeholders


def test_every_task_serialises_its_params_once_and_keeps_them(tmp_path: Path) -> None:
    """Params are left out of the generic fields (each pass there validated every param) yet still serialised."""
    from airflow.serialization.serialized_objects import DagSerialization

    from airflow_mlc.serialized_fields import ParamsSerializedOnce

    bag = dag_bag(specs_folder(tmp_path))
    for dag in bag.dags.values():
        restored = DagSerialization.from_dict(DagSerialization.to_dict(dag))
        for task in dag.tasks:
            assert isinstance(task, ParamsSerializedOnce)
            assert "params" not in type(task).get_serialized_fields()
            kept = restored.get_task(task.task_id).params
            assert kept.dump() == task.params.dump(), (dag.dag_id, task.task_id)
            assert set(kept) == set(dag.params)


def test_placeholder_dag_ids_are_valid_and_unique(tmp_path: Path) -> None:
    from airflow_mlc.dag_factory import build_dags, invalid_spec_dag_id

    assert invalid_spec_dag_id(Path("my model (v2).yaml")) == "mlc_invalid_spec_my_model_v2"
    assert invalid_spec_dag_id(Path("été.yaml")) == "mlc_invalid_spec_t"
    for name in ("x.yaml", "x.yml", "x-2.yaml"):
        (tmp_path / name).write_text("- not a mapping\n")
    assert set(build_dags(tmp_path)) == {"mlc_invalid_spec_x", "mlc_invalid_spec_x_2", "mlc_invalid_spec_x-2"}


@pytest.mark.parametrize("invalid_specs", [False, True], ids=["shipped specs", "with invalid specs"])
def test_parsing_the_dags_loads_no_heavy_library(invalid_specs: bool, tmp_path: Path) -> None:
    env = os.environ.copy()
    if invalid_specs:
        env["MLC_SPECS_DIR"] = str(specs_folder(tmp_path))
    code = textwrap.dedent(
        f"""
        import glob, importlib.util, sys
        for path in sorted(glob.glob({str(DAGS_DIR)!r} + "/*.py")):
            spec = importlib.util.spec_from_file_location("dagfile", path)
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
        print([m for m in {HEAVY!r} if m in sys.modules])
        """
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
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
