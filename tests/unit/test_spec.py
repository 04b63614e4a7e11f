from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from airflow_mlc.errors import SpecError
from airflow_mlc.spec import load_spec, load_specs, parse_spec
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


def test_two_specs_with_one_name_are_refused(tmp_path: Path) -> None:
    write_spec(tmp_path, bikes_data(), "a.yaml")
    write_spec(tmp_path, bikes_data(), "b.yml")
    with pytest.raises(SpecError, match="name 'bikes' is already used"):
        load_specs(tmp_path)
