"""Training, evaluation and registry moves against a real MLflow store (SQLite in a temporary folder)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from airflow_mlc.core import tracking
from airflow_mlc.core.evaluate import apply_gates, effective_gates, evaluate
from airflow_mlc.core.metrics import improves
from airflow_mlc.core.prepare import clean, split
from airflow_mlc.core.registry import CHALLENGER, CHAMPION, register_and_promote, version_by_alias
from airflow_mlc.core.train import load_estimator_class, train_and_log
from airflow_mlc.errors import BadInputError
from airflow_mlc.spec import GatesSpec, load_spec
from tests.conftest import BIKES_SPEC

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def spec():
    fast = load_spec(BIKES_SPEC)
    model = fast.model.model_copy(update={"search": None, "params": {"max_iter": 50, "random_state": 0}})
    return fast.model_copy(update={"name": "bikes_unit", "model": model})


@pytest.fixture(scope="module")
def winter(spec) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = pd.read_csv(Path(spec.source.path))
    return split(clean(frame[frame["timestamp"] < "2011-04-01"], spec), spec)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> tracking.MlflowTarget:
    return tracking.embedded_target(tmp_path_factory.mktemp("mlflow-home"))


def tags_for(run_id: str, window_end: str = "2011-04-01T00:00:00+00:00") -> dict[str, str]:
    return {
        tracking.TAG_DAG_ID: "mlc_bikes_unit_train",
        tracking.TAG_RUN_ID: run_id,
        tracking.TAG_TASK_ID: "train",
        tracking.TAG_FINGERPRINT: "f" + run_id,
        tracking.TAG_WINDOW_END: window_end,
    }


def test_improves_respects_direction_and_margin() -> None:
    assert improves(90.0, 100.0, "rmse", 0.05)
    assert not improves(96.0, 100.0, "rmse", 0.05)
    assert improves(0.9, 0.8, "r2", 0.1)
    assert not improves(0.85, 0.8, "r2", 0.1)
    assert not improves(100.0, 100.0, "rmse", 0.0)


def test_gates_report_every_reason() -> None:
    gates = GatesSpec(metric="rmse", max=50.0, min_improvement=0.1)
    passed, reasons = apply_gates({"rmse": 60.0}, gates, {"rmse": 62.0})
    assert not passed
    assert reasons == [
        "rmse 60 is above the maximum 50",
        "rmse 60 does not beat the champion's 62 by the required margin of 10.00%",
    ]
    assert apply_gates({"rmse": 40.0}, gates, None) == (True, ["rmse 40 passes the thresholds"])
    assert effective_gates(gates, max_value=70).max == 70.0
    assert effective_gates(gates).max == 50.0


def test_a_gate_metric_that_could_not_be_computed_is_a_clear_error() -> None:
    with pytest.raises(BadInputError, match="gates.metric 'roc_auc' could not be computed"):
        apply_gates({"accuracy": 0.9}, GatesSpec(metric="roc_auc", min=0.5), None)


def test_unknown_estimator_paths_are_clear() -> None:
    with pytest.raises(BadInputError, match="cannot import module 'sklearn.nowhere'"):
        load_estimator_class("sklearn.nowhere.Model")
    with pytest.raises(BadInputError, match="has no estimator class 'NoSuchRegressor'"):
        load_estimator_class("sklearn.ensemble.NoSuchRegressor")


def test_search_space_names_are_checked(spec, winter) -> None:
    from airflow_mlc.core.train import fit
    from airflow_mlc.spec import SearchSpec

    model = spec.model.model_copy(update={"search": SearchSpec(space={"depth": [1, 2]})})
    with pytest.raises(BadInputError, match=r"has no parameter\(s\) \['depth'\]"):
        fit(spec.model_copy(update={"model": model}), winter[0])


def test_search_picks_from_the_space(spec, winter) -> None:
    from airflow_mlc.core.train import fit
    from airflow_mlc.spec import SearchSpec

    search = SearchSpec(method="grid", cv=2, space={"learning_rate": [0.05, 0.2]})
    model, best, cv_score = fit(
        spec.model_copy(update={"model": spec.model.model_copy(update={"search": search})}), winter[0]
    )
    assert best["learning_rate"] in (0.05, 0.2)
    assert cv_score is not None and cv_score > 0  # an RMSE, sign restored
    assert model.named_steps["model"].learning_rate == best["learning_rate"]


def test_training_logs_one_run_and_a_retry_finds_it(spec, winter, target) -> None:
    train, test = winter
    first = train_and_log(spec, train, test, target, tags_for("r1"), ("train-uri", "test-uri"))
    again = train_and_log(spec, train, test, target, tags_for("r1"), ("train-uri", "test-uri"))
    client = target.activate()
    experiment = client.get_experiment_by_name("mlc/bikes_unit")
    runs = tracking.find_runs(client, experiment.experiment_id, {tracking.TAG_RUN_ID: "r1"})
    assert len(runs) == 1
    assert again.reused and again.run_id == first.run_id
    assert again.test_metrics == pytest.approx(first.test_metrics)
    run = runs[0]
    assert {"cv_score", "test_rmse", "test_mae", "test_r2"} >= set(run.data.metrics) >= {"test_rmse"}
    assert run.data.params["estimator"] == spec.model.estimator
    contexts = sorted(i.tags[0].value for i in run.inputs.dataset_inputs)
    assert contexts == ["testing", "training"]
    import mlflow

    model = mlflow.sklearn.load_model(first.model_uri)
    assert model.predict(test[spec.features.columns]).shape == (len(test),)


def test_promotion_follows_the_gates(spec, winter, target) -> None:
    train, test = winter
    client = target.activate()
    name = "bikes_promotion"
    good = train_and_log(spec, train, test, target, tags_for("good"), ("a", "b"))

    first = register_and_promote(
        client, name, good.model_uri, good.run_id, True, ["ok"], tags_for("good"), evaluated_against=None
    )
    assert first.promoted and first.previous_champion is None
    assert version_by_alias(client, name, CHAMPION).version == int(first.version)
    assert version_by_alias(client, name, CHALLENGER) is None

    retry = register_and_promote(
        client, name, good.model_uri, good.run_id, True, ["ok"], tags_for("good"), evaluated_against=None
    )
    assert retry.version == first.version and retry.reason == "already champion (a retry)"
    assert len(client.search_model_versions(f"name = '{name}'")) == 1

    worse = train_and_log(spec, train, test, target, tags_for("worse"), ("a", "b"))
    dry = register_and_promote(
        client,
        name,
        worse.model_uri,
        worse.run_id,
        False,
        ["bad"],
        tags_for("worse"),
        evaluated_against="1",
        dry_run=True,
    )
    assert dry.dry_run and dry.version is None
    assert len(client.search_model_versions(f"name = '{name}'")) == 1

    kept = register_and_promote(
        client, name, worse.model_uri, worse.run_id, False, ["rmse too high"], tags_for("worse"), evaluated_against="1"
    )
    assert not kept.promoted and kept.champion == first.version
    assert version_by_alias(client, name, CHAMPION).version == int(first.version)
    assert version_by_alias(client, name, CHALLENGER).version == int(kept.version)
    version = client.get_model_version(name, kept.version)
    assert version.tags["mlc.promoted"] == "false"
    assert version.tags["mlc.promotion_reason"] == "gates failed: rmse too high"


def test_a_backfill_never_takes_champion_unless_forced(spec, winter, target) -> None:
    train, test = winter
    client = target.activate()
    name = "bikes_backfill"
    new = train_and_log(spec, train, test, target, tags_for("new", "2011-06-01T00:00:00+00:00"), ("a", "b"))
    old = train_and_log(spec, train, test, target, tags_for("old", "2011-02-01T00:00:00+00:00"), ("a", "b"))
    current = register_and_promote(
        client,
        name,
        new.model_uri,
        new.run_id,
        True,
        ["ok"],
        tags_for("new", "2011-06-01T00:00:00+00:00"),
        evaluated_against=None,
    )

    def register_old(force: bool = False):
        return register_and_promote(
            client,
            name,
            old.model_uri,
            old.run_id,
            True,
            ["ok"],
            tags_for("old", "2011-02-01T00:00:00+00:00"),
            evaluated_against=current.version,
            force=force,
        )

    backfill = register_old()
    assert not backfill.promoted and "a backfill" in backfill.reason
    assert version_by_alias(client, name, CHAMPION).version == int(current.version)
    forced = register_old(force=True)
    assert forced.promoted and forced.previous_champion == current.version
    tags = client.get_model_version(name, forced.version).tags
    assert tags["mlc.previous_champion"] == current.version
    assert tags["mlc.promotion_reason"].startswith("forced by the run")


def test_evaluate_scores_candidate_and_champion_on_the_same_rows(spec, winter) -> None:
    from sklearn.dummy import DummyRegressor

    from airflow_mlc.core.train import fit

    train, test = winter
    candidate = fit(spec, train)[0]
    dummy = DummyRegressor().fit(train[spec.features.columns], train[spec.target])
    result = evaluate(spec, candidate, test, spec.gates, champion=dummy, champion_version="3")
    assert result.passed
    assert result.metrics["rmse"] < result.champion_metrics["rmse"]
    expected = float(((test[spec.target] - dummy.predict(test[spec.features.columns])) ** 2).mean() ** 0.5)
    assert result.champion_metrics["rmse"] == pytest.approx(expected)
    reverse = evaluate(spec, dummy, test, spec.gates, champion=candidate, champion_version="4")
    assert not reverse.passed


def test_skops_imports_quietly_in_a_task_process() -> None:
    import subprocess
    import sys

    # As in a task process, Airflow's deprecated shim modules are loaded before skops is. A plain
    # ``import skops.io`` there records about 1,200 deprecation warnings.
    script = """
import warnings
import airflow.utils.timezone
from airflow_mlc.core.tracking import import_skops
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    skops_io = import_skops()
print(skops_io.__name__, sum("deprecated" in str(w.message) for w in caught))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.split()[-2:] == ["skops.io", "0"]
