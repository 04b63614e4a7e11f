"""Training, evaluation and registry moves against a real MLflow store (SQLite in a temporary folder)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from airflow_mlc.core import tracking
from airflow_mlc.core.evaluate import effective_gates
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


def test_gates_report_every_bound_and_take_the_run_s_overrides() -> None:
    from airflow_mlc.core.evaluate import bound_failures

    gates = GatesSpec(metric="rmse", max=50.0, min=45.0, min_improvement=0.1)
    assert bound_failures(60.0, gates) == ["rmse 60 is above the maximum 50"]
    assert bound_failures(40.0, gates) == ["rmse 40 is below the minimum 45"]
    assert bound_failures(47.0, gates) == []
    assert effective_gates(gates, max_value=70).max == 70.0
    assert effective_gates(gates).max == 50.0


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
    assert {"cv_score", "test_rmse", "test_mae", "test_r2", "test_mape"} >= set(run.data.metrics) >= {"test_rmse"}
    assert run.data.params["estimator"] == spec.model.estimator
    contexts = sorted(i.tags[0].value for i in run.inputs.dataset_inputs)
    assert contexts == ["testing", "training"]
    import mlflow

    model = mlflow.sklearn.load_model(first.model_uri)
    assert model.predict(test[spec.features.columns]).shape == (len(test),)


# --- training a classification ------------------------------------------------------------------


def churn_spec(name: str, metric: str = "f1", **changes):
    from airflow_mlc.spec import parse_spec

    data = {
        "name": name,
        "task": "classification",
        "source": {"path": "churn.csv"},
        "target": "churn",
        "features": {"numeric": ["usage"], "categorical": ["plan"]},
        "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "gates": {"metric": metric},
    }
    for key, value in changes.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return parse_spec(data)


def churn_rows(rows: int, labels=("No", "Yes"), seed: int = 0) -> pd.DataFrame:
    """Labels that follow ``usage`` with noise; the last label is the rarest of a binary."""
    import numpy as np

    generator = np.random.default_rng(seed)
    usage = generator.normal(size=rows)
    share = (usage + generator.normal(0, 0.6, rows)) / 3 + (0.5 if len(labels) > 2 else 0.3)
    codes = np.clip((share * len(labels)).astype(int), 0, len(labels) - 1)
    return pd.DataFrame(
        {"usage": usage, "plan": generator.choice(["basic", "pro"], rows), "churn": np.asarray(labels)[codes]}
    )


def runs_of(target, spec) -> list:
    client = target.activate()
    experiment = client.get_experiment_by_name(spec.experiment_name)
    return [] if experiment is None else client.search_runs([experiment.experiment_id])


class PredictOnlyClassifier:
    """A classifier with neither predict_proba nor decision_function."""

    def get_params(self, deep: bool = True) -> dict:
        return {}

    def set_params(self, **params):
        return self

    def fit(self, x, y):
        import numpy as np

        self.classes_ = np.unique(y)
        return self

    def predict(self, x):
        import numpy as np

        return np.full(len(x), self.classes_[0])


def test_a_classification_run_records_its_classes_and_positive_class(target) -> None:
    from sklearn.metrics import f1_score

    train, test = churn_rows(600), churn_rows(200, seed=1)
    assert (train.churn == "Yes").mean() < 0.5
    spec = churn_spec("churn_classes")

    result = train_and_log(spec, train, test, target, tags_for("c1"), ("a", "b"))

    run = runs_of(target, spec)[0]
    assert run.data.tags[tracking.TAG_CLASSES] == '["No", "Yes"]'
    assert run.data.tags[tracking.TAG_POSITIVE_CLASS] == "Yes"  # the minority of the training rows
    assert (result.classes, result.positive_class) == (["No", "Yes"], "Yes")
    import mlflow

    predicted = mlflow.sklearn.load_model(result.model_uri).predict(test[["usage", "plan"]])
    assert run.data.metrics["test_f1"] == pytest.approx(f1_score(test.churn, predicted, pos_label="Yes"))
    again = train_and_log(spec, train, test, target, tags_for("c1"), ("a", "b"))
    assert again.reused and (again.classes, again.positive_class) == (["No", "Yes"], "Yes")

    chosen = churn_spec("churn_chosen", positive_class="No")
    result = train_and_log(chosen, train, test, target, tags_for("c2"), ("a", "b"))
    assert result.positive_class == "No"
    assert result.test_metrics["f1"] == pytest.approx(f1_score(test.churn, predicted, pos_label="No"))


def test_a_positive_class_that_is_no_training_label_fails_before_any_run(target) -> None:
    spec = churn_spec("churn_bad_positive", positive_class="yes")
    with pytest.raises(BadInputError, match=r"positive_class 'yes' is not one of the training labels \['No', 'Yes'\]"):
        train_and_log(spec, churn_rows(200), churn_rows(50, seed=1), target, tags_for("p1"), ("a", "b"))
    assert runs_of(target, spec) == []


def test_a_bad_hyperparameter_fails_once_naming_estimator_parameter_and_value(target) -> None:
    from airflow_mlc.core.train import fit

    train = churn_rows(200)
    params = churn_spec("churn_bad_param", model={"params": {"C": -1}})
    with pytest.raises(
        BadInputError, match=r"model.params: sklearn.linear_model.LogisticRegression rejects C=-1: The 'C' parameter"
    ):
        train_and_log(params, train, churn_rows(50, seed=1), target, tags_for("h1"), ("a", "b"))
    assert runs_of(target, params) == []

    space = churn_spec("churn_bad_space", model={"search": {"space": {"C": [1.0, -1]}}})
    with pytest.raises(
        BadInputError, match=r"model.search.space.C: sklearn.linear_model.LogisticRegression rejects C=-1"
    ):
        fit(space, train)


def test_a_gate_metric_the_model_cannot_give_fails_before_any_run(target) -> None:
    train, test = churn_rows(300), churn_rows(100, seed=1)
    ridge = churn_spec("churn_ridge_log_loss", "log_loss", model={"estimator": "sklearn.linear_model.RidgeClassifier"})
    with pytest.raises(BadInputError, match="log_loss needs predict_proba; sklearn.linear_model.RidgeClassifier"):
        train_and_log(ridge, train, test, target, tags_for("g1"), ("a", "b"))
    assert runs_of(target, ridge) == []

    bare = churn_spec("churn_no_scores", "roc_auc", model={"estimator": f"{__name__}.PredictOnlyClassifier"})
    with pytest.raises(BadInputError, match="roc_auc needs predict_proba or decision_function; .* gives neither"):
        train_and_log(bare, train, test, target, tags_for("g2"), ("a", "b"))
    assert runs_of(target, bare) == []

    ranked = churn_spec("churn_ridge_auc", "roc_auc", model={"estimator": "sklearn.linear_model.RidgeClassifier"})
    result = train_and_log(ranked, train, test, target, tags_for("g3"), ("a", "b"))  # from decision_function
    assert 0.5 < result.test_metrics["roc_auc"] <= 1 and "log_loss" not in result.test_metrics


def test_a_gate_metric_undefined_on_the_test_rows_fails_before_any_run(target) -> None:
    train, test = churn_rows(300), churn_rows(200, seed=1)
    spec = churn_spec("churn_no_positive_test", "recall", positive_class="Yes")
    with pytest.raises(BadInputError, match="gates.metric 'recall' has no value on the .* no row is of the positive"):
        train_and_log(spec, train, test[test.churn == "No"], target, tags_for("u1"), ("a", "b"))
    assert runs_of(target, spec) == []


def test_training_survives_test_rows_missing_a_class(target) -> None:
    train, test = churn_rows(600, labels=("a", "b", "c")), churn_rows(200, labels=("a", "b", "c"), seed=1)
    spec = churn_spec("churn_three", "roc_auc")
    result = train_and_log(spec, train, test[test.churn != "c"], target, tags_for("m1"), ("a", "b"))
    assert result.classes == ["a", "b", "c"] and result.positive_class is None
    assert {"roc_auc", "f1_macro", "accuracy"} <= result.test_metrics.keys()
    run = runs_of(target, spec)[0]
    assert tracking.TAG_POSITIVE_CLASS not in run.data.tags


def test_the_search_scores_the_gate_metric_of_the_positive_class() -> None:
    import numpy as np
    from sklearn.base import clone
    from sklearn.metrics import f1_score, log_loss
    from sklearn.model_selection import StratifiedKFold

    from airflow_mlc.core.train import build_pipeline, fit

    train = churn_rows(400)
    for metric, positive in (("f1", "No"), ("f1", "Yes"), ("log_loss", None)):
        search = {"search": {"space": {"C": [0.5]}, "cv": 3}}
        spec = churn_spec("churn_search", metric, model=search, **({"positive_class": positive} if positive else {}))
        _, _, cv_score = fit(spec, train)
        folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=spec.split.seed)
        x, y = train[["usage", "plan"]], train["churn"]
        scores = []
        for fitting, scoring in folds.split(x, y):
            model = clone(build_pipeline(spec)).set_params(model__C=0.5).fit(x.iloc[fitting], y.iloc[fitting])
            if metric == "f1":
                scores.append(f1_score(y.iloc[scoring], model.predict(x.iloc[scoring]), pos_label=positive))
            else:
                proba = model.predict_proba(x.iloc[scoring])
                scores.append(log_loss(y.iloc[scoring], proba, labels=list(model.classes_)))
        assert cv_score == pytest.approx(np.mean(scores)), metric


def test_cv_folds_follow_the_split() -> None:
    from sklearn.model_selection import KFold, StratifiedKFold, TimeSeriesSplit

    from airflow_mlc.core.train import _folds

    assert isinstance(_folds(churn_spec("f"), 3), StratifiedKFold)
    assert isinstance(_folds(churn_spec("f", split={"stratify": False}), 3), KFold)
    timed = churn_spec("f", split={"method": "time"}, source={"path": "churn.csv", "time_column": "t"})
    assert isinstance(_folds(timed, 3), TimeSeriesSplit)
    assert isinstance(_folds(load_spec(BIKES_SPEC).model_copy(update={"split": churn_spec("f").split}), 3), KFold)


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


def test_skops_imports_quietly_in_a_task_process() -> None:
    import subprocess
    import sys

    # As in a task process, Airflow's deprecated shim modules are loaded before skops is. A plain
    # ``import skops.io`` there records about 1,200 deprecation warnings.
    script = """
import warnings
import airflow.utils.timezone
from airflow_mlc.core.skops_import import import_skops
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    skops_io = import_skops()
print(skops_io.__name__, sum("deprecated" in str(w.message) for w in caught))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.split()[-2:] == ["skops.io", "0"]
