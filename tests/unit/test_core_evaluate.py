"""Known answers for the promotion rule: holdouts, the paired bootstrap, the trivial model, absolute gates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airflow_mlc.core.compare import metric_interval, paired_comparison
from airflow_mlc.core.evaluate import ChampionModel, evaluate, holdout_rows, version_tags
from airflow_mlc.core.metrics import Predictions
from airflow_mlc.core.prepare import hash_sides, split, split_rule
from airflow_mlc.errors import BadInputError, DataError
from airflow_mlc.spec import parse_spec

pytestmark = pytest.mark.unit


def make_spec(task: str, target: str, metric: str, **changes) -> object:
    """A spec over the numeric features ``a`` and ``b``; ``changes`` update its sections."""
    estimator = "LinearRegression" if task == "regression" else "LogisticRegression"
    data = {
        "name": task[:3],
        "task": task,
        "source": {"path": "x.csv"},
        "target": target,
        "features": {"numeric": ["a", "b"]},
        "model": {"estimator": f"sklearn.linear_model.{estimator}"},
        "gates": {"metric": metric},
    }
    for key, value in changes.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return parse_spec(data)


def regression_spec(**changes) -> object:
    return make_spec("regression", "y", "rmse", **changes)


def classification_spec(**changes) -> object:
    return make_spec("classification", "label", "f1", **changes)


def linear_frame(rows: int, seed: int = 0, noise: float = 1.0) -> pd.DataFrame:
    generator = np.random.default_rng(seed)
    a, b = generator.normal(size=rows), generator.normal(size=rows)
    return pd.DataFrame({"a": a, "b": b, "y": 3 * a - 2 * b + noise * generator.normal(size=rows)})


def fit_linear(frame: pd.DataFrame, columns=("a", "b")):
    from sklearn.linear_model import LinearRegression

    return LinearRegression().fit(frame[list(columns)], frame["y"])


def regression_predictions(y, predicted) -> Predictions:
    return Predictions("regression", np.asarray(y, dtype=float), np.asarray(predicted, dtype=float))


# --- the paired bootstrap ---------------------------------------------------------------------------


def test_a_clearly_better_model_is_significant_and_an_equal_one_is_not() -> None:
    generator = np.random.default_rng(1)
    y = generator.normal(size=400)
    good = regression_predictions(y, y + 0.3 * generator.normal(size=400))
    bad = regression_predictions(y, y + 1.0 * generator.normal(size=400))
    better = paired_comparison("rmse", good, bad, confidence=0.95, rounds=500)
    assert better is not None and better.significant and better.low > 0
    assert better.improvement == pytest.approx(better.champion - better.challenger)
    worse = paired_comparison("rmse", bad, good, confidence=0.95, rounds=500)
    assert worse is not None and not worse.significant and worse.high < 0
    same = paired_comparison("rmse", good, good, confidence=0.95, rounds=500)
    assert same is not None and same.improvement == 0 and not same.significant


def test_noise_between_two_equally_good_models_is_not_significant() -> None:
    generator = np.random.default_rng(2)
    y = generator.normal(size=200)
    significant = 0
    for seed in range(20):
        noise = np.random.default_rng(seed)
        first = regression_predictions(y, y + noise.normal(size=200))
        second = regression_predictions(y, y + noise.normal(size=200))
        comparison = paired_comparison("rmse", first, second, confidence=0.95, rounds=300, seed=seed)
        significant += bool(comparison and comparison.significant)
    assert significant <= 2  # about 2.5 % expected on each side


def test_the_interval_of_a_metric_covers_its_value() -> None:
    generator = np.random.default_rng(3)
    y = generator.normal(size=300)
    predictions = regression_predictions(y, y + generator.normal(size=300))
    low, high = metric_interval("rmse", predictions, confidence=0.9, rounds=400)
    assert low < 1.0 < high


def test_an_auc_on_rows_of_one_class_has_no_interval() -> None:
    one_class = Predictions(
        "classification",
        np.array(["no"] * 40),
        np.array(["no"] * 40),
        np.column_stack([np.full(40, 0.8), np.full(40, 0.2)]),
        True,
        ("no", "yes"),
        "yes",
    )
    assert metric_interval("roc_auc", one_class, 0.95, 200) is None
    assert paired_comparison("roc_auc", one_class, one_class, 0.95, 200) is None


# --- holdouts ------------------------------------------------------------------------------------------


def test_hash_split_keeps_a_rows_side_as_the_window_grows() -> None:
    spec = regression_spec()
    early = linear_frame(400, seed=4)
    later = pd.concat([early, linear_frame(600, seed=5)], ignore_index=True)
    first, second = hash_sides(early, spec), hash_sides(later, spec)
    assert (second[: len(early)] == first).all()
    assert 0.15 < first.mean() < 0.25
    reseeded = hash_sides(early, regression_spec(split={"seed": 7}))
    assert (reseeded != first).any()


def test_hash_split_by_key_keeps_an_entitys_rows_together() -> None:
    from airflow_mlc.core.prepare import clean

    spec = regression_spec(split={"key": ["customer"]})  # an id that is not a feature
    frame = linear_frame(300, seed=6).assign(customer=[f"c{i % 37}" for i in range(300)], note="x")
    train, test = split(clean(frame, spec), spec)
    assert list(train.columns) == ["a", "b", "y", "customer"]
    assert not set(train["customer"]) & set(test["customer"])
    with pytest.raises(DataError, match=r"split.key names \['customer'\], which the data does not have"):
        clean(frame.drop(columns="customer"), spec)


def test_stratified_hash_split_puts_every_class_on_both_sides() -> None:
    spec = classification_spec()
    generator = np.random.default_rng(8)
    frame = pd.DataFrame({"a": generator.normal(size=200), "b": generator.normal(size=200)})
    frame["label"] = ["rare" if i < 3 else "common" for i in range(200)]
    train, test = split(frame, spec)
    assert set(train["label"]) == set(test["label"]) == {"rare", "common"}


def test_without_a_time_column_the_champion_is_scored_only_on_rows_it_never_saw() -> None:
    spec = regression_spec()
    frame = linear_frame(1000, seed=9)
    old_spec = regression_spec(split={"seed": 1})
    champion_train, _ = split(frame, old_spec)  # another seed: most of the candidate's test rows were its training rows
    _, test = split(frame, spec)
    champion = ChampionModel(fit_linear(champion_train), "1", train=champion_train, split_rule=split_rule(old_spec))
    rows, rule = holdout_rows(test, spec, champion)
    seen = test.merge(champion_train, how="inner")
    assert len(seen) > 0 and len(rows) == len(test) - len(seen)
    assert rows.merge(champion_train, how="inner").empty
    assert "not in the champion's training data" in rule


def test_the_rows_a_champion_saw_are_found_however_their_numbers_were_typed() -> None:
    # the champion's window had a missing count, so its training data holds the count as float64; the
    # candidate's window has none: int64. The same rows must still hash alike, and keep their side.
    spec = regression_spec(features={"numeric": ["a", "b", "visits"]})
    frame = linear_frame(1000, seed=12).assign(visits=np.arange(1000) % 17)
    champion_train, _ = split(frame.assign(visits=frame["visits"].astype(float)), regression_spec(split={"seed": 1}))
    _, test = split(frame, spec)
    assert frame["visits"].dtype == np.int64 and champion_train["visits"].dtype == np.float64
    assert (hash_sides(frame, spec) == hash_sides(frame.assign(visits=frame["visits"].astype(float)), spec)).all()

    champion = ChampionModel(fit_linear(champion_train), "1", train=champion_train, split_rule="hash:key=a,b,y")
    rows, _ = holdout_rows(test, spec, champion)
    seen = test.merge(champion_train.assign(visits=champion_train["visits"].astype(int)), how="inner")
    assert len(seen) > 0 and len(rows) == len(test) - len(seen)


def test_a_champion_split_by_the_older_hash_rule_shares_no_test_rows_by_rule() -> None:
    spec = regression_spec()
    _, test = split(linear_frame(400, seed=13), spec)
    older = ChampionModel(fit_linear(test), "1", train=None, split_rule=split_rule(spec).replace("hash2:", "hash:"))
    rows, rule = holdout_rows(test, spec, older)
    assert rows.empty and "unknown" in rule


def test_a_champion_of_unknown_rows_and_another_rule_is_never_compared() -> None:
    spec = regression_spec()
    frame = linear_frame(400, seed=10)
    _, test = split(frame, spec)
    unknown = ChampionModel(fit_linear(frame), "1", train=None, split_rule="time:test_size=0.2")
    rows, rule = holdout_rows(test, spec, unknown)
    assert rows.empty and "unknown" in rule
    same_rule = ChampionModel(fit_linear(frame), "1", train=None, split_rule=split_rule(spec))
    assert len(holdout_rows(test, spec, same_rule)[0]) == len(test)


def test_with_a_time_column_the_newest_unseen_rows_are_compared() -> None:
    spec = regression_spec(source={"path": "x.csv", "time_column": "t"}, split={"method": "time"})
    frame = linear_frame(500, seed=11).assign(t=pd.date_range("2020-01-01", periods=500, freq="D").astype(str))
    train, test = split(frame, spec)
    champion = ChampionModel(fit_linear(train), "1", data_end="2021-03-01T00:00:00+00:00", train=train.head(300))
    rows, rule = holdout_rows(test, spec, champion)
    assert (pd.to_datetime(rows["t"]) >= "2021-03-01").all() and len(rows) >= 30
    assert "newer than the champion's data" in rule


# --- the promotion rule ----------------------------------------------------------------------------------


def test_a_clearly_better_challenger_is_promoted_and_the_evidence_is_recorded() -> None:
    spec = regression_spec()
    train, test = split(linear_frame(1500, seed=12), spec)
    weak = fit_linear(train.assign(b=0.0))  # ignores b
    strong = fit_linear(train)
    result = evaluate(spec, strong, test, spec.gates, ChampionModel(weak, "1", train=train), train=train)
    assert result.passed, result.reasons
    assert result.comparison["significant"] and result.comparison["low"] > 0
    assert result.scored_rows == len(test)
    assert result.reasons[0].startswith("significantly better than the champion")
    tags = version_tags({"mlc.run_id": "r", "other": "x"}, result.as_dict())
    assert tags["mlc.run_id"] == "r" and "other" not in tags
    assert float(tags["mlc.improvement_ci_low"]) > 0 and tags["mlc.compared_with"] == "1"
    assert tags["mlc.scored_rows"] == str(len(test))
    reverse = evaluate(spec, weak, test, spec.gates, ChampionModel(strong, "2", train=train), train=train)
    assert not reverse.passed


def test_a_comparison_on_too_few_rows_never_promotes() -> None:
    spec = regression_spec()
    tiny = linear_frame(10, seed=13)
    train, test = tiny.head(8), tiny.tail(2)
    champion = ChampionModel(fit_linear(train.assign(b=0.0)), "1", train=train)
    result = evaluate(spec, fit_linear(train), test, spec.gates.model_copy(update={"beat_baseline": False}), champion)
    assert not result.passed
    assert any("only 2 rows neither model trained on (gates.min_rows 30)" in r for r in result.reasons)


def test_a_challenger_failing_a_bound_its_champion_fails_by_more_replaces_it() -> None:
    spec = regression_spec(gates={"metric": "rmse", "max": 1.2})
    train, test = split(linear_frame(2000, seed=14, noise=1.5), spec)
    better, worse = fit_linear(train), fit_linear(train.assign(b=0.0))
    champion = ChampionModel(worse, "1", train=train)
    allowed = evaluate(spec, better, test, spec.gates, champion, train=train)
    assert allowed.metrics["rmse"] > 1.2 and allowed.passed, allowed.reasons
    assert any("waived as the champion fails them too" in r for r in allowed.reasons)
    strict = spec.gates.model_copy(update={"absolute_with_champion": "block"})
    blocked = evaluate(spec, better, test, strict, champion, train=train)
    assert not blocked.passed and any("above the maximum 1.2" in r for r in blocked.reasons)
    first = evaluate(spec, better, test, spec.gates, None, train=train)
    assert not first.passed  # without a champion the bound holds


def test_a_trivial_model_is_never_promoted_on_imbalanced_labels() -> None:
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression

    generator = np.random.default_rng(15)
    rows = 4000
    frame = pd.DataFrame({"a": generator.normal(size=rows), "b": generator.normal(size=rows)})
    frame["label"] = np.where(frame["a"] * 2 + generator.normal(size=rows) > 4.2, "fraud", "ok")
    assert 0.01 < (frame["label"] == "fraud").mean() < 0.05
    spec = classification_spec()
    train, test = split(frame, spec)
    x, y = train[["a", "b"]], train["label"]
    logistic = LogisticRegression().fit(x, y)
    dummy = DummyClassifier(strategy="most_frequent").fit(x, y)
    first = evaluate(spec, logistic, test, spec.gates, None, train=train, positive_class="fraud")
    assert first.passed, first.reasons
    assert first.positive_class == "fraud"
    trivial = evaluate(spec, dummy, test, spec.gates, None, train=train, positive_class="fraud")
    assert not trivial.passed
    replace = evaluate(spec, dummy, test, spec.gates, ChampionModel(logistic, "1", train=train), train=train)
    assert not replace.passed


def test_a_label_shuffled_challenger_is_never_promoted() -> None:
    from sklearn.linear_model import LogisticRegression

    generator = np.random.default_rng(16)
    rows = 1500
    frame = pd.DataFrame({"a": generator.normal(size=rows), "b": generator.normal(size=rows)})
    frame["label"] = np.where(frame["a"] + 0.5 * generator.normal(size=rows) > 0, "yes", "no")
    spec = classification_spec(gates={"metric": "roc_auc"})
    train, test = split(frame, spec)
    good = LogisticRegression().fit(train[["a", "b"]], train["label"])
    shuffled = LogisticRegression().fit(train[["a", "b"]], generator.permutation(train["label"].to_numpy()))
    result = evaluate(spec, shuffled, test, spec.gates, ChampionModel(good, "1", train=train), train=train)
    assert not result.passed
    assert result.comparison is not None and result.comparison["high"] < 0


def test_a_gate_metric_the_model_cannot_give_is_bad_input() -> None:
    from sklearn.linear_model import RidgeClassifier

    generator = np.random.default_rng(17)
    frame = pd.DataFrame({"a": generator.normal(size=300), "b": generator.normal(size=300)})
    frame["label"] = np.where(frame["a"] > 0, "yes", "no")
    spec = classification_spec(gates={"metric": "log_loss"})
    train, test = split(frame, spec)
    model = RidgeClassifier().fit(train[["a", "b"]], train["label"])
    with pytest.raises(BadInputError, match="gates.metric 'log_loss' is not defined"):
        evaluate(spec, model, test, spec.gates, None, train=train)
