"""Native threads: every task limits OpenMP and BLAS to its pool slots, training to ``model.threads``."""

from __future__ import annotations

import os
from typing import Any

import pytest

from airflow_mlc.operators.base import THREAD_VARIABLES, MLCBaseOperator
from airflow_mlc.operators.train import TrainModelOperator
from airflow_mlc.spec import ModelLifecycleSpec, load_spec
from tests.conftest import BIKES_SPEC

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def native_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenBLAS (numpy) and OpenMP (scikit-learn) loaded before the task starts; no thread variable set."""
    import numpy  # noqa: F401
    import sklearn.ensemble  # noqa: F401

    for variable in THREAD_VARIABLES.values():
        monkeypatch.delenv(variable, raising=False)


def spec_with_threads(threads: int | None) -> ModelLifecycleSpec:
    spec = load_spec(BIKES_SPEC)
    return spec.model_copy(update={"model": spec.model.model_copy(update={"threads": threads})})


class Probe:
    """What a task saw inside ``execute_phase``: each native library's threads and the thread variables."""

    def __init__(self) -> None:
        self.threads: dict[str, int] = {}
        self.env: dict[str, str | None] = {}

    def record(self) -> None:
        from threadpoolctl import threadpool_info

        self.threads = {info["internal_api"]: info["num_threads"] for info in threadpool_info()}
        self.env = {variable: os.environ.get(variable) for variable in THREAD_VARIABLES.values()}


class ProbeOperator(MLCBaseOperator):
    def __init__(self, *, probe: Probe, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.probe = probe

    def execute_phase(self, context: Any) -> None:
        self.probe.record()


class ProbeTrainOperator(TrainModelOperator):
    def __init__(self, *, probe: Probe, **kwargs: Any) -> None:
        super().__init__(split={}, **kwargs)
        self.probe = probe

    def execute_phase(self, context: Any) -> None:
        self.probe.record()


def run_probe(operator_class: type, spec: ModelLifecycleSpec, **kwargs: Any) -> Probe:
    probe = Probe()
    operator_class(task_id="probe", spec=spec, probe=probe, **kwargs).execute({})
    return probe


def test_the_native_libraries_are_there_to_limit() -> None:
    probe = Probe()
    probe.record()
    assert {"openmp", "openblas"} <= set(probe.threads)


@pytest.mark.parametrize("slots", [1, 3])
def test_a_task_uses_its_pool_slots(slots: int) -> None:
    probe = run_probe(ProbeOperator, spec_with_threads(None), pool_slots=slots)
    assert set(probe.threads.values()) == {slots}
    assert probe.env == dict.fromkeys(THREAD_VARIABLES.values(), str(slots))


def test_model_threads_do_not_apply_to_other_tasks() -> None:
    probe = run_probe(ProbeOperator, spec_with_threads(3))
    assert set(probe.threads.values()) == {1}


def test_training_uses_model_threads() -> None:
    probe = run_probe(ProbeTrainOperator, spec_with_threads(3))
    assert set(probe.threads.values()) == {3}
    assert probe.env["OMP_NUM_THREADS"] == "3"


def test_training_without_model_threads_uses_its_pool_slots() -> None:
    probe = run_probe(ProbeTrainOperator, spec_with_threads(None), pool_slots=2)
    assert set(probe.threads.values()) == {2}


def test_a_variable_the_user_set_wins_over_the_pool_slots_for_its_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    probe = run_probe(ProbeTrainOperator, spec_with_threads(None), pool_slots=3)
    assert probe.threads["openmp"] == 2
    assert probe.threads["openblas"] == 3
    assert probe.env["OMP_NUM_THREADS"] == "2"
    assert os.environ["OMP_NUM_THREADS"] == "2"


def test_model_threads_win_over_the_environment_for_training(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    probe = run_probe(ProbeTrainOperator, spec_with_threads(3))
    assert set(probe.threads.values()) == {3}
    assert probe.env["OMP_NUM_THREADS"] == "3"
    assert os.environ["OMP_NUM_THREADS"] == "1"  # restored when the task ends


def test_the_limit_ends_with_the_task() -> None:
    from threadpoolctl import threadpool_info

    before = {info["filepath"]: info["num_threads"] for info in threadpool_info()}
    run_probe(ProbeOperator, spec_with_threads(None), pool_slots=3)
    assert {info["filepath"]: info["num_threads"] for info in threadpool_info()} == before
    assert not any(variable in os.environ for variable in THREAD_VARIABLES.values())


def test_a_failing_phase_still_restores_the_variables() -> None:
    class Failing(ProbeOperator):
        def execute_phase(self, context: Any) -> None:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        Failing(task_id="probe", spec=spec_with_threads(None), probe=Probe()).execute({})
    assert not any(variable in os.environ for variable in THREAD_VARIABLES.values())
