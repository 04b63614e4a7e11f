"""The metrics: scikit-learn's values from NumPy, any label type, undefined values as None, fast resamples."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as sk

from airflow_mlc.core.metrics import (
    Predictions,
    compute,
    compute_all,
    gate_metric_available,
    predict,
    predict_chunks,
    resolve_positive_class,
    score_model,
    why_undefined,
)
from airflow_mlc.errors import BadInputError, DataError
from airflow_mlc.spec import CLASSIFICATION_METRICS, REGRESSION_METRICS

pytestmark = pytest.mark.unit

TOLERANCE = 1e-9


def binary_rows(classes: tuple, positive_share: float, rows: int, seed: int) -> tuple[np.ndarray, ...]:
    """Labels, noisy predictions and probabilities rounded to two digits (so scores tie)."""
    generator = np.random.default_rng(seed)
    is_positive = generator.random(rows) < positive_share
    signal = np.clip(0.5 * is_positive + generator.normal(0.25, 0.25, rows), 0, 1)
    probability = np.round(signal, 2)
    negative, positive = classes
    y = np.where(is_positive, positive, negative)
    predicted = np.where(probability >= 0.5, positive, negative)
    return y, predicted, probability


def binary_predictions(classes: tuple, positive, share: float = 0.4, rows: int = 1000, seed: int = 0) -> Predictions:
    negative = classes[1] if positive == classes[0] else classes[0]
    y, predicted, probability = binary_rows((negative, positive), share, rows, seed)
    at = classes.index(positive)
    scores = np.empty((rows, 2))
    scores[:, at], scores[:, 1 - at] = probability, 1 - probability
    return Predictions("classification", y, predicted, scores, True, classes, positive)


def sklearn_binary(p: Predictions) -> dict[str, float]:
    y, guess, pos = p.y_true, p.predicted, p.positive
    score = p.scores[:, p.classes.index(pos)]
    return {
        "accuracy": sk.accuracy_score(y, guess),
        "balanced_accuracy": sk.balanced_accuracy_score(y, guess),
        "f1": sk.f1_score(y, guess, pos_label=pos),
        "precision": sk.precision_score(y, guess, pos_label=pos),
        "recall": sk.recall_score(y, guess, pos_label=pos),
        "f1_weighted": sk.f1_score(y, guess, average="weighted"),
        "f1_macro": sk.f1_score(y, guess, average="macro"),
        "roc_auc": sk.roc_auc_score(y == pos, score),
        "pr_auc": sk.average_precision_score(y == pos, score),
        "log_loss": sk.log_loss(y, p.scores, labels=list(p.classes)),
    }


BINARY_CASES = {
    "text labels": (("No", "Yes"), "Yes", 0.4),
    "first class positive": (("No", "Yes"), "No", 0.4),
    "booleans": ((False, True), True, 0.3),
    "integers": ((0, 1), 1, 0.5),
    "3% positives": ((0, 1), 1, 0.03),
}


@pytest.mark.parametrize("case", BINARY_CASES, ids=list(BINARY_CASES))
def test_binary_metrics_equal_scikit_learn_s(case: str) -> None:
    classes, positive, share = BINARY_CASES[case]
    predictions = binary_predictions(classes, positive, share, rows=3000, seed=len(case))
    expected = sklearn_binary(predictions)

    found = compute_all(predictions)

    assert found.keys() == CLASSIFICATION_METRICS.keys()
    for name, value in expected.items():
        assert found[name] == pytest.approx(value, abs=TOLERANCE), name


def four_class_predictions(rows: int = 1200, seed: int = 1, missing: str | None = "c") -> Predictions:
    """A 4-class model; the true labels lack ``missing``, the predictions may still name it."""
    generator = np.random.default_rng(seed)
    classes = ("a", "b", "c", "d")
    present = [c for c in classes if c != missing]
    y = generator.choice(present, rows, p=None)
    logits = generator.normal(size=(rows, 4))
    logits[np.arange(rows), [classes.index(label) for label in y]] += 1.2
    scores = np.round(np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True), 2)
    scores /= scores.sum(axis=1, keepdims=True)
    predicted = np.asarray(classes)[scores.argmax(axis=1)]
    return Predictions("classification", y, predicted, scores, True, classes)


def one_vs_rest(p: Predictions, measure) -> float:
    values = [
        measure(p.y_true == label, p.scores[:, at])
        for at, label in enumerate(p.classes)
        if 0 < (p.y_true == label).sum() < len(p)
    ]
    return float(np.mean(values))


def test_multi_class_metrics_with_a_class_missing_equal_scikit_learn_s() -> None:
    predictions = four_class_predictions()
    assert "c" not in set(predictions.y_true) and "c" in set(predictions.predicted)
    y, guess = predictions.y_true, predictions.predicted
    held = sorted(set(y))  # macro averages are over the classes the rows hold, not those only predicted
    expected = {
        "accuracy": sk.accuracy_score(y, guess),
        "balanced_accuracy": sk.balanced_accuracy_score(y, guess),
        "f1": sk.f1_score(y, guess, average="macro", labels=held),
        "precision": sk.precision_score(y, guess, average="macro", zero_division=0, labels=held),
        "recall": sk.recall_score(y, guess, average="macro", zero_division=0, labels=held),
        "f1_weighted": sk.f1_score(y, guess, average="weighted", labels=held),
        "f1_macro": sk.f1_score(y, guess, average="macro", labels=held),
        "roc_auc": one_vs_rest(predictions, sk.roc_auc_score),
        "pr_auc": one_vs_rest(predictions, sk.average_precision_score),
        "log_loss": sk.log_loss(y, predictions.scores, labels=list(predictions.classes)),
    }

    found = compute_all(predictions)

    assert found.keys() == expected.keys()
    for name, value in expected.items():
        assert found[name] == pytest.approx(value, abs=TOLERANCE), name


def test_multi_class_ranking_metrics_equal_scikit_learn_s_one_vs_rest_macro() -> None:
    predictions = four_class_predictions(missing=None)
    binarized = np.column_stack([predictions.y_true == c for c in predictions.classes])

    assert compute("roc_auc", predictions) == pytest.approx(
        sk.roc_auc_score(predictions.y_true, predictions.scores, multi_class="ovr", labels=list(predictions.classes)),
        abs=TOLERANCE,
    )
    assert compute("pr_auc", predictions) == pytest.approx(
        sk.average_precision_score(binarized, predictions.scores, average="macro"), abs=TOLERANCE
    )


def test_regression_metrics_equal_scikit_learn_s() -> None:
    generator = np.random.default_rng(4)
    y = generator.normal(50, 10, 500)
    predicted = y + generator.normal(0, 5, 500)
    found = compute_all(Predictions("regression", y, predicted))
    assert found.keys() == REGRESSION_METRICS.keys()
    assert found["rmse"] == pytest.approx(sk.root_mean_squared_error(y, predicted), abs=TOLERANCE)
    assert found["mae"] == pytest.approx(sk.mean_absolute_error(y, predicted), abs=TOLERANCE)
    assert found["r2"] == pytest.approx(sk.r2_score(y, predicted), abs=TOLERANCE)
    assert found["mape"] == pytest.approx(sk.mean_absolute_percentage_error(y, predicted), abs=TOLERANCE)


def test_a_constant_target_has_no_r2() -> None:
    constant = Predictions("regression", np.full(10, 3.0), np.arange(10.0))
    assert compute("r2", constant) is None
    assert "constant" in why_undefined("r2", constant)
    assert compute("rmse", constant) == pytest.approx(sk.root_mean_squared_error(np.full(10, 3.0), np.arange(10.0)))


def test_windows_missing_classes_never_raise_and_undefined_metrics_are_none() -> None:
    classes = ("No", "Yes")
    all_no = Predictions(
        "classification", np.array(["No"] * 20), np.array(["No"] * 19 + ["Yes"]), np.full((20, 2), 0.5), True, classes
    )
    found = compute_all(all_no)
    assert found["accuracy"] == pytest.approx(0.95)
    for name in ("roc_auc", "pr_auc", "recall"):
        assert compute(name, all_no) is None and name not in found
    assert "no row is of the positive class 'Yes'" in why_undefined("roc_auc", all_no)
    assert all(np.isfinite(value) for value in found.values())

    never_positive = Predictions("classification", np.array(["No", "Yes"]), np.array(["No", "No"]), classes=classes)
    assert compute("precision", never_positive) is None
    assert "predicts no row as the positive class 'Yes'" in why_undefined("precision", never_positive)
    assert compute("recall", never_positive) == 0.0
    assert compute("roc_auc", never_positive) is None  # no scores

    window = four_class_predictions(rows=30)
    one_class = window.take(np.flatnonzero(window.y_true == "a"))
    found = compute_all(one_class)
    assert "roc_auc" not in found and "pr_auc" not in found
    assert "log_loss" in found and found["accuracy"] == pytest.approx(
        sk.accuracy_score(one_class.y_true, one_class.predicted)
    )
    assert "both positive and negative rows" in why_undefined("roc_auc", one_class)

    empty = window.take(np.zeros(0, dtype=int))
    assert compute_all(empty) == {}
    assert why_undefined("accuracy", empty) == "there are no rows"


def test_a_label_the_model_does_not_know_counts_with_the_smallest_probability() -> None:
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    known = Predictions("classification", np.array([0, 1, 0]), np.array([0, 1, 0]), scores, True, (0, 1), 1)
    unknown = Predictions("classification", np.array([0, 1, 2]), np.array([0, 1, 0]), scores, True, (0, 1), 1)
    eps = np.finfo(np.float64).eps
    expected = (-np.log(0.9) - np.log(0.8) - np.log(eps)) / 3
    assert compute("log_loss", known) == pytest.approx(sk.log_loss([0, 1, 0], scores, labels=[0, 1]))
    assert compute("log_loss", unknown) == pytest.approx(expected)
    assert compute("accuracy", unknown) == pytest.approx(2 / 3)
    assert compute("precision", unknown) == 1.0  # the unknown label is a negative of class 1


def test_a_resample_scores_as_the_same_rows_would() -> None:
    for predictions in (binary_predictions(("No", "Yes"), "Yes"), four_class_predictions(missing=None)):
        index = np.random.default_rng(7).integers(0, len(predictions), len(predictions))
        resample = predictions.take(index)
        fresh = Predictions(
            "classification",
            predictions.y_true[index],
            predictions.predicted[index],
            predictions.scores[index],
            True,
            predictions.classes,
            predictions.positive,
        )
        assert len(resample) == len(index)
        assert compute_all(resample) == pytest.approx(compute_all(fresh), abs=TOLERANCE)


def test_a_metric_on_a_resample_of_1000_rows_takes_well_under_a_millisecond() -> None:
    predictions = binary_predictions(("No", "Yes"), "Yes", rows=1000)
    multi = four_class_predictions(rows=1000)
    generator = np.random.default_rng(0)
    indexes = [generator.integers(0, 1000, 1000) for _ in range(50)]
    for source in (predictions, multi):
        for name in CLASSIFICATION_METRICS:
            started = time.perf_counter()
            for index in indexes:
                compute(name, source.take(index))
            per_call = (time.perf_counter() - started) / len(indexes)
            assert per_call < 1e-3, f"{name}: {per_call * 1e3:.2f} ms a resample"


def test_the_positive_class_is_configured_or_the_minority() -> None:
    assert resolve_positive_class(["No", "Yes", "Yes"], ("No", "Yes")) == "No"
    assert resolve_positive_class([0, 1, 0, 1], (0, 1)) == 1  # a tie: the last in sorted order
    assert resolve_positive_class([], ("No", "Yes")) == "Yes"
    assert resolve_positive_class([0, 0], (0, 1), configured="1") == 1  # matched by text
    assert resolve_positive_class([True], (False, True), configured="True") is True
    assert resolve_positive_class(["a"], ("a", "b", "c"), configured="a") is None  # binary only
    with pytest.raises(BadInputError, match=r"positive_class 'yes' is not one of the classes \['No', 'Yes'\]"):
        resolve_positive_class(["No"], ("No", "Yes"), configured="yes")


def churn_frame(rows: int = 400, seed: int = 2) -> pd.DataFrame:
    generator = np.random.default_rng(seed)
    x = generator.normal(size=rows)
    churn = np.where(x + generator.normal(0, 0.7, rows) > 1.0, "Yes", "No")
    return pd.DataFrame({"usage": x, "plan": generator.choice(["basic", "pro"], rows), "churn": churn})


def fitted(estimator, frame: pd.DataFrame):
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    features = ColumnTransformer([("plan", OneHotEncoder(), ["plan"])], remainder="passthrough")
    return Pipeline([("features", features), ("model", estimator)]).fit(frame[["usage", "plan"]], frame["churn"])


def test_predict_uses_the_model_s_classes_and_probabilities() -> None:
    from sklearn.linear_model import LogisticRegression

    frame = churn_frame()
    model = fitted(LogisticRegression(), frame)
    predictions = predict(model, frame, ["usage", "plan"], "churn", "classification")
    assert predictions.classes == ("No", "Yes") and predictions.positive == "Yes"  # the minority
    assert predictions.probabilities and predictions.scores.shape == (len(frame), 2)
    proba = model.predict_proba(frame[["usage", "plan"]])[:, 1]
    assert compute("roc_auc", predictions) == pytest.approx(sk.roc_auc_score(frame.churn == "Yes", proba))
    assert score_model(model, frame, ["usage", "plan"], "churn", "classification", "No")["recall"] == pytest.approx(
        sk.recall_score(frame.churn, model.predict(frame[["usage", "plan"]]), pos_label="No")
    )


def test_predictions_made_chunk_by_chunk_equal_those_made_at_once() -> None:
    from sklearn.linear_model import LogisticRegression, RidgeClassifier

    frame = churn_frame().sort_values("churn", ascending=False, ignore_index=True)  # the first chunks: all "Yes"
    for estimator in (LogisticRegression(), RidgeClassifier()):
        model = fitted(estimator, frame)
        whole = predict(model, frame, ["usage", "plan"], "churn", "classification")
        chunks = [frame.iloc[:0], *(frame.iloc[start : start + 37] for start in range(0, len(frame), 37))]
        chunked = predict_chunks(model, chunks, ["usage", "plan"], "churn", "classification")
        assert chunked.positive == whole.positive == "Yes"  # the minority of all the rows, not of the first chunk
        assert chunked.probabilities == whole.probabilities
        np.testing.assert_array_equal(chunked.scores, whole.scores)
        assert compute_all(chunked) == compute_all(whole)


def test_a_decision_function_ranks_for_either_positive_class() -> None:
    from sklearn.linear_model import RidgeClassifier

    frame = churn_frame()
    model = fitted(RidgeClassifier(), frame)
    decision = model.decision_function(frame[["usage", "plan"]])  # the score of classes_[1], "Yes"
    for positive, score in (("Yes", decision), ("No", -decision)):
        predictions = predict(model, frame, ["usage", "plan"], "churn", "classification", positive)
        assert not predictions.probabilities
        assert compute("roc_auc", predictions) == pytest.approx(sk.roc_auc_score(frame.churn == positive, score))
        assert compute("pr_auc", predictions) == pytest.approx(
            sk.average_precision_score(frame.churn == positive, score)
        )
        assert compute("log_loss", predictions) is None
    assert gate_metric_available("roc_auc", model) is None
    assert gate_metric_available("log_loss", model) == (
        "log_loss needs predict_proba; sklearn.linear_model.RidgeClassifier does not give it"
    )


class PredictOnly:
    """A classifier with neither predict_proba nor decision_function."""

    classes_ = np.array([0, 1])

    def predict(self, x):
        return np.zeros(len(x), dtype=int)


def test_a_model_without_scores_cannot_give_a_ranking_metric() -> None:
    assert gate_metric_available("roc_auc", PredictOnly()) == (
        f"roc_auc needs predict_proba or decision_function; {__name__}.PredictOnly gives neither"
    )
    assert gate_metric_available("accuracy", PredictOnly()) is None


def test_predict_names_the_missing_columns_and_refuses_unlabelled_rows() -> None:
    from sklearn.linear_model import LogisticRegression

    frame = churn_frame()
    model = fitted(LogisticRegression(), frame)
    with pytest.raises(DataError, match=r"columns \['plan'\] are missing: the model needs them as features"):
        predict(model, frame.drop(columns=["plan"]), ["usage"], "churn", "classification")
    with pytest.raises(DataError, match="target 'churn' is missing on 1 of 400 rows"):
        predict(model, frame.assign(churn=[None, *frame.churn[1:]]), ["usage", "plan"], "churn", "classification")
    with pytest.raises(BadInputError, match="'rmse' is not a classification metric"):
        compute("rmse", predict(model, frame, ["usage", "plan"], "churn", "classification"))
