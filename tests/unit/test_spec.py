from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from airflow_mlc.errors import SpecError
from airflow_mlc.spec import load_spec, load_specs, load_specs_reporting, parse_spec
from tests.conftest import BIKES_CSV, BIKES_SPEC

pytestmark = pytest.mark.unit


def bikes_data() -> dict:
    return yaml.safe_load(BIKES_SPEC.read_text())


def write_spec(folder: Path, data: dict, name: str = "model.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_bikes_spec_loads_and_resolves_its_data_path() -> None:
    spec = load_spec(BIKES_SPEC)
    assert spec.name == "bikes"
    assert spec.task == "regression"
    assert Path(spec.source.path) == BIKES_CSV.resolve()
    assert spec.columns[-1] == "bikers"
    assert spec.experiment_name == "mlc/bikes"
    assert spec.registered_model_name == "bikes"
    assert not spec.higher_is_better


def test_a_typo_names_the_file_and_the_field(tmp_path: Path) -> None:
    data = bikes_data()
    data["model"]["estimater"] = data["model"].pop("estimator")
    path = write_spec(tmp_path, data)
    with pytest.raises(SpecError) as error:
        load_spec(path)
    message = str(error.value)
    assert str(path) in message
    assert "model.estimater: unknown field" in message
    assert "model.estimator: Field required" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["gates"].update(metric="f1"), "gates.metric 'f1' is not a regression metric"),
        (lambda d: d["features"]["numeric"].append("bikers"), "target 'bikers' is also listed as a feature"),
        (lambda d: d["source"].pop("time_column"), "split.method 'time' needs source.time_column"),
        (lambda d: d["split"].update(test_size=1.5), "split.test_size: Input should be less than 1"),
        (lambda d: d["model"].update(estimator="Ridge"), "is not an import path"),
        (lambda d: d["contract"]["ranges"].update(nope={"min": 0}), "the contract names 'nope'"),
        (lambda d: d["source"].update(sql="select 1"), "give exactly one of 'path'"),
        (lambda d: d["contract"]["ranges"].update(weathersit={"min": 0}), "contract.ranges.weathersit: ranges apply"),
        (lambda d: d["contract"]["categories"].update(temp=[0.1]), "contract.categories.temp: allowed values apply"),
        (lambda d: d.update(name="bad name"), "name: String should match pattern"),
        (lambda d: d["gates"].update(min=200, max=150), "gates: gates.min (200) is above gates.max (150)"),
        (lambda d: d.update(positive_class=1), "positive_class applies to a classification only"),
        (
            lambda d: (d["source"].pop("time_column"), d["source"].update(time_unit="s"), d.pop("split")),
            "source: source.time_format and source.time_unit describe source.time_column, which is not set",
        ),
        (
            lambda d: d["source"].update(time_format="%Y-%m-%d", time_unit="s"),
            "give source.time_format (text times) or source.time_unit (integer times), not both",
        ),
        (lambda d: d["split"].update(key=[]), "split.key is empty"),
        (
            lambda d: d.update(prediction={"keep_columns": ["timestamp", "role"]}),
            "prediction.keep_columns: ['role'] would collide with the columns written beside each prediction",
        ),
        (
            lambda d: d.update(mlflow={"registered_model": "o'brien"}),
            'mlflow.registered_model: "o\'brien" holds a quote',
        ),
    ],
)
def test_invalid_specs_say_what_is_wrong(change, expected: str) -> None:
    data = bikes_data()
    change(data)
    with pytest.raises(SpecError, match=None) as error:
        parse_spec(data, origin="x.yaml")
    assert expected in str(error.value)
    assert str(error.value).startswith("x.yaml: ")


def test_a_spec_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(SpecError, match="must be a YAML mapping"):
        load_spec(path)


def classification_data() -> dict:
    data = bikes_data()
    data["task"] = "classification"
    data["contract"]["ranges"].pop("bikers")  # ranges apply to a regression target only
    return data


@pytest.mark.parametrize(
    ("data", "metric", "higher_is_better"),
    [
        (bikes_data, "mape", False),
        (classification_data, "balanced_accuracy", True),
        (classification_data, "pr_auc", True),
        (classification_data, "log_loss", False),
    ],
)
def test_the_added_metrics_are_allowed(data, metric: str, higher_is_better: bool) -> None:
    spec_data = data()
    spec_data["gates"] = {"metric": metric}
    spec = parse_spec(spec_data)
    assert spec.gates.metric == metric
    assert spec.higher_is_better is higher_is_better


def test_one_invalid_file_costs_only_itself(tmp_path: Path) -> None:
    good = write_spec(tmp_path, bikes_data(), "a.yaml")
    data = bikes_data()
    data.update(name="other")
    data["gates"].update(min=200)
    bad = write_spec(tmp_path, data, "b.yaml")
    (tmp_path / "c.yml").write_text("name: [unclosed\n")
    (tmp_path / "d.yaml").write_bytes(b"\xff\xfe\x00 not text")
    (tmp_path / ".hidden.yaml").write_text("- not a spec\n")
    (tmp_path / "notes.txt").write_text("not a spec either")

    specs, errors = load_specs_reporting(tmp_path)

    assert [spec.origin for spec in specs] == [str(good)]
    assert list(errors) == [bad, tmp_path / "c.yml", tmp_path / "d.yaml"]
    assert str(errors[bad]).startswith(f"{bad}: gates: gates.min (200) is above gates.max (150)")
    assert str(errors[tmp_path / "c.yml"]).startswith(f"{tmp_path / 'c.yml'}: cannot read the spec")
    assert "UnicodeDecodeError" in str(errors[tmp_path / "d.yaml"])


def test_of_two_specs_with_one_name_the_first_file_loads(tmp_path: Path) -> None:
    first = write_spec(tmp_path, bikes_data(), "a.yaml")
    second = write_spec(tmp_path, bikes_data(), "b.yml")
    loaded = load_specs_reporting(tmp_path)
    assert [spec.origin for spec in loaded.specs] == [str(first)]
    assert list(loaded.errors) == [second]
    message = str(loaded.errors[second])
    assert message.startswith(f"{second}: name: 'bikes' is already used by {first}")


def test_load_specs_refuses_a_folder_with_any_invalid_file(tmp_path: Path) -> None:
    write_spec(tmp_path, bikes_data(), "a.yaml")
    write_spec(tmp_path, bikes_data(), "b.yml")
    (tmp_path / "c.yaml").write_text("name: [unclosed\n")
    with pytest.raises(SpecError) as error:
        load_specs(tmp_path)
    lines = str(error.value).splitlines()
    assert lines[0].startswith(f"{tmp_path / 'b.yml'}: name: 'bikes' is already used")
    assert any(line.startswith(f"{tmp_path / 'c.yaml'}: cannot read the spec") for line in lines)


def test_load_specs_returns_every_spec_of_a_valid_folder(tmp_path: Path) -> None:
    write_spec(tmp_path, bikes_data(), "a.yaml")
    data = bikes_data()
    data.update(name="other")
    write_spec(tmp_path, data, "b.yaml")
    assert [spec.name for spec in load_specs(tmp_path)] == ["bikes", "other"]


def test_specs_are_read_by_the_c_yaml_loader_when_pyyaml_has_it() -> None:
    from airflow_mlc.spec import YAML_LOADER

    assert YAML_LOADER is (yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader)


def test_a_yaml_error_quotes_the_line_as_the_pure_python_loader_does(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\n  task: [regression\n")
    with pytest.raises(SpecError) as error:
        load_spec(path)
    assert "line 2, column 7:\n      task: [regression\n          ^" in str(error.value)


def test_the_c_and_the_pure_python_yaml_loaders_read_the_shipped_spec_alike() -> None:
    from airflow_mlc.spec import read_yaml

    text = BIKES_SPEC.read_text()
    assert read_yaml(text) == yaml.safe_load(text)


# tasks: per-phase task settings ------------------------------------------------------------------------------


def with_tasks(tasks: object) -> dict:
    data = bikes_data()
    data["tasks"] = tasks
    return data


@pytest.mark.parametrize(
    ("tasks", "expected"),
    [
        (
            {"trian": {"queue": "mlc-heavy"}},
            "x.yaml: tasks: 'trian' is not a phase: the entries are task ids of the model's DAGs or 'default' "
            "(one of: default, ingest, validate, prepare, train, evaluate, register, wait_for_data, drift, quality, "
            "request_retraining, judge_rollout, wait_for_champion, predict, rollback)",
        ),
        ({"monitor": {"queue": "q"}}, "x.yaml: tasks: 'monitor' is not a phase"),
        ({"train": {"qeue": "mlc-heavy"}}, "x.yaml: tasks.train.qeue: unknown field (a typo?)"),
        ({"train": {"queue": ""}}, "x.yaml: tasks.train.queue: String should have at least 1 character"),
        ({"train": {"pool_slots": 0}}, "x.yaml: tasks.train.pool_slots: Input should be greater than or equal to 1"),
        ({"default": {"retries": -1}}, "x.yaml: tasks.default.retries: Input should be greater than or equal to 0"),
        (
            {"train": {"priority_weight": "high"}},
            "x.yaml: tasks.train.priority_weight: Input should be a valid integer",
        ),
        ({"train": {"executor_config": ["pod"]}}, "x.yaml: tasks.train.executor_config: Input should be a valid dict"),
        (["train"], "x.yaml: tasks: Input should be a valid dictionary"),
    ],
)
def test_invalid_task_settings_name_the_field_and_the_value(tasks: object, expected: str) -> None:
    with pytest.raises(SpecError) as error:
        parse_spec(with_tasks(tasks), origin="x.yaml")
    assert str(error.value).startswith(expected), str(error.value)


def test_task_settings_are_defaults_replaced_field_by_field_by_the_phase() -> None:
    config = {"pod_template_file": "/pods/heavy.yaml", "labels": {"size": "big"}}
    spec = parse_spec(
        with_tasks(
            {
                "default": {"queue": "light", "retries": 2},
                "train": {"queue": "mlc-heavy", "pool": "training", "priority_weight": 10, "executor_config": config},
            }
        )
    )
    assert spec.task_settings("train") == {
        "queue": "mlc-heavy",
        "pool": "training",
        "priority_weight": 10,
        "retries": 2,
        "executor_config": config,
    }
    assert spec.task_settings("ingest") == {"queue": "light", "retries": 2}
    assert parse_spec(bikes_data()).task_settings("train") == {}
