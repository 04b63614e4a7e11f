"""The spec's ``tasks`` settings reach exactly the tasks of their phase, and survive DAG serialisation."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import BIKES_SPEC, DAGS_DIR

pytestmark = pytest.mark.dags

#: The task arguments a ``tasks`` entry may set.
SETTINGS = ("queue", "pool", "pool_slots", "priority_weight", "retries", "executor_config")
HEAVY = {
    "queue": "mlc-heavy",
    "pool": "training",
    "priority_weight": 10,
    "executor_config": {"pod_template_file": "/opt/pods/big-memory.yaml", "labels": {"size": "big"}},
}


def bikes(tasks: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    data = yaml.safe_load(BIKES_SPEC.read_text())
    data["source"]["path"] = str(DAGS_DIR / "data" / "bikeshare_hourly_2011.csv")
    data.update(changes)
    if tasks is not None:
        data["tasks"] = tasks
    return data


def build(folder: Path, data: dict[str, Any]) -> dict[str, Any]:
    from airflow_mlc.dag_factory import build_dags

    folder.mkdir(exist_ok=True)
    (folder / "bikes.yaml").write_text(yaml.safe_dump(data))
    return build_dags(folder)


def settings_of(task: Any) -> dict[str, Any]:
    return {name: getattr(task, name) for name in SETTINGS}


def tasks_by_dag(dags: dict[str, Any]) -> dict[tuple[str, str], Any]:
    return {(dag_id, task.task_id): task for dag_id, dag in dags.items() for task in dag.tasks}


def test_the_train_settings_reach_the_train_task_and_no_other(tmp_path: Path) -> None:
    rollout = {"rollout": {"mode": "shadow"}}  # every task of the four DAGs, judge_rollout too
    plain = tasks_by_dag(build(tmp_path / "plain", bikes(prediction=rollout)))
    dags = build(tmp_path / "heavy", bikes({"train": HEAVY}, prediction=rollout))
    tasks = tasks_by_dag(dags)

    assert set(tasks) == set(plain) and len(tasks) == 16
    train = tasks["mlc_bikes_train", "train"]
    assert {name: getattr(train, name) for name in HEAVY} == HEAVY
    assert settings_of(train) == {**settings_of(plain["mlc_bikes_train", "train"]), **HEAVY}
    for key, task in tasks.items():
        if key != ("mlc_bikes_train", "train"):
            assert settings_of(task) == settings_of(plain[key]), key
    assert (
        plain["mlc_bikes_train", "train"].queue == "default"
        and plain["mlc_bikes_train", "train"].pool == "default_pool"
    )


def test_the_settings_survive_serialisation_as_the_scheduler_reads_them(tmp_path: Path) -> None:
    from airflow.serialization.serialized_objects import DagSerialization

    dag = build(tmp_path, bikes({"train": HEAVY}))["mlc_bikes_train"]
    restored = DagSerialization.from_dict(DagSerialization.to_dict(dag))

    assert {name: getattr(restored.get_task("train"), name) for name in HEAVY} == HEAVY
    assert restored.get_task("evaluate").queue == "default"
    assert restored.get_task("evaluate").executor_config == {}


def test_default_applies_to_every_task_and_a_phase_replaces_it_field_by_field(tmp_path: Path) -> None:
    tasks = tasks_by_dag(
        build(
            tmp_path,
            bikes(
                {
                    "default": {"queue": "light", "retries": 3},
                    "train": {"queue": "mlc-heavy"},
                    "ingest": {"pool_slots": 2},
                }
            ),
        )
    )

    assert (tasks["mlc_bikes_train", "train"].queue, tasks["mlc_bikes_train", "train"].retries) == ("mlc-heavy", 3)
    for dag_id in ("mlc_bikes_train", "mlc_bikes_monitor"):  # an id names its task in every DAG that has it
        ingest = tasks[dag_id, "ingest"]
        assert (ingest.queue, ingest.retries, ingest.pool_slots) == ("light", 3, 2)
        assert ingest.threads == 2  # the native thread limit follows the pool slots
    others = [task for (_, task_id), task in tasks.items() if task_id not in {"train", "ingest"}]
    assert others and all((t.queue, t.retries, t.pool_slots) == ("light", 3, 1) for t in others)


def test_a_pod_override_manifest_becomes_the_pod_the_kubernetes_executor_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifests: list[dict[str, Any]] = []

    class PodGenerator:  # the provider's, as far as the factory uses it
        @staticmethod
        def deserialize_model_dict(manifest: dict[str, Any]) -> tuple[str, int]:
            manifests.append(manifest)
            return ("V1Pod", len(manifests))

    module = types.ModuleType("airflow.providers.cncf.kubernetes.pod_generator")
    module.PodGenerator = PodGenerator  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    manifest = {"spec": {"containers": [{"name": "base", "resources": {"requests": {"memory": "8Gi"}}}]}}
    config = {"pod_override": manifest, "other": {"kept": True}}

    dags = build(tmp_path, bikes({"train": {"executor_config": config}}))

    train = dags["mlc_bikes_train"].get_task("train")
    assert train.executor_config == {"pod_override": ("V1Pod", 1), "other": {"kept": True}}
    assert manifests == [manifest]
    assert dags["mlc_bikes_train"].get_task("evaluate").executor_config == {}


def test_a_pod_override_manifest_without_the_kubernetes_provider_is_an_invalid_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "airflow.providers.cncf.kubernetes.pod_generator", None)  # not installed
    data = bikes({"default": {"executor_config": {"pod_override": {"spec": {}}}}})

    dags = build(tmp_path, data)

    assert set(dags) == {"mlc_invalid_spec_bikes"}
    description = dags["mlc_invalid_spec_bikes"].description
    assert f"{tmp_path / 'bikes.yaml'}: tasks.default.executor_config.pod_override: a pod manifest needs" in description
    assert "apache-airflow-providers-cncf-kubernetes" in description


def test_every_task_of_the_dags_is_a_phase(tmp_path: Path) -> None:
    from airflow_mlc.spec import TASK_PHASES

    dags = build(tmp_path, bikes(prediction={"rollout": {"mode": "shadow"}}))

    assert {task.task_id for dag in dags.values() for task in dag.tasks} == set(TASK_PHASES)
