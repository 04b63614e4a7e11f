"""Bootstrap intervals on large sets of rows: the m-out-of-n bootstrap against known answers and the full bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from airflow_mlc.core import compare
from airflow_mlc.core.compare import metric_interval, paired_comparison, unpaired_comparison
from airflow_mlc.core.metrics import Predictions

pytestmark = pytest.mark.unit

Z95 = 1.959964


def labels(rows: int, accuracy: float, seed: int) -> Predictions:
    """Binary predictions right on about ``accuracy`` of ``rows`` rows, with a score that ranks them."""
    generator = np.random.default_rng(seed)
    truth = generator.choice(["no", "yes"], rows, p=[0.7, 0.3])
    right = generator.random(rows) < accuracy
    predicted = np.where(right, truth, np.where(truth == "yes", "no", "yes"))
    yes = np.clip((predicted == "yes") * 0.5 + generator.normal(0.25, 0.2, rows), 0, 1)
    return Predictions("classification", truth, predicted, np.column_stack([1 - yes, yes]), True, ("no", "yes"), "yes")


@pytest.fixture(autouse=True)
def small_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resamples of 10,000 rows at most: the rule at a tenth of its scale, so that each test takes seconds."""
    monkeypatch.setattr(compare, "MAX_RESAMPLE_ROWS", 10_000)


def close(found: tuple[float, float], expected: tuple[float, float], share: float = 0.1) -> bool:
    """Both ends within ``share`` of the expected interval's width."""
    width = expected[1] - expected[0]
    return abs(found[0] - expected[0]) <= share * width and abs(found[1] - expected[1]) <= share * width


def test_accuracy_on_many_rows_has_the_binomial_interval() -> None:
    predictions = labels(150_000, 0.8, seed=1)
    accuracy = float(np.mean(predictions.y_true == predictions.predicted))
    half = Z95 * np.sqrt(accuracy * (1 - accuracy) / len(predictions))

    found = metric_interval("accuracy", predictions, confidence=0.95, rounds=400)

    assert found is not None and close(found, (accuracy - half, accuracy + half))


def test_a_paired_difference_on_many_rows_has_the_normal_interval_of_the_row_differences() -> None:
    champion, challenger = labels(100_000, 0.80, seed=2), labels(100_000, 0.81, seed=2)
    challenger = Predictions(  # the same rows, a model right on a few more of them
        "classification", champion.y_true, challenger.predicted, challenger.scores, True, ("no", "yes"), "yes"
    )
    rows = (challenger.predicted == challenger.y_true).astype(float) - (champion.predicted == champion.y_true)
    half = Z95 * rows.std(ddof=1) / np.sqrt(len(rows))

    found = paired_comparison("accuracy", challenger, champion, confidence=0.95, rounds=400)

    assert found is not None and close((found.low, found.high), (rows.mean() - half, rows.mean() + half))
    assert found.significant == (rows.mean() - half > 0)


def test_two_independent_sets_of_very_different_sizes_combine_both_spreads() -> None:
    window, evaluation = labels(120_000, 0.78, seed=3), labels(3_000, 0.80, seed=4)
    p1 = float(np.mean(window.y_true == window.predicted))
    p2 = float(np.mean(evaluation.y_true == evaluation.predicted))
    half = Z95 * np.sqrt(p1 * (1 - p1) / len(window) + p2 * (1 - p2) / len(evaluation))

    found = unpaired_comparison("accuracy", window, evaluation, confidence=0.95, rounds=600)

    # the evaluation's 3,000 rows are resampled whole, the window's 120,000 by 10,000: its spread is not
    # inflated to that of 10,000 rows, nor the evaluation's shrunk
    assert found is not None and close((found.low, found.high), (p1 - p2 - half, p1 - p2 + half), share=0.12)


@pytest.mark.parametrize("metric", ["roc_auc", "rmse"])
def test_the_scaled_small_resamples_agree_with_the_full_bootstrap(monkeypatch, metric) -> None:
    if metric == "rmse":
        generator = np.random.default_rng(5)
        truth = generator.normal(size=60_000)
        predictions = Predictions("regression", truth, truth + generator.standard_t(3, size=60_000))
    else:
        predictions = labels(60_000, 0.75, seed=5)
    monkeypatch.setattr(compare, "MAX_RESAMPLE_ROWS", 10**9)
    full = metric_interval(metric, predictions, confidence=0.9, rounds=500, seed=7)
    monkeypatch.setattr(compare, "MAX_RESAMPLE_ROWS", 6_000)  # a tenth of the rows per resample

    scaled = metric_interval(metric, predictions, confidence=0.9, rounds=500, seed=7)

    assert full is not None and scaled is not None and close(scaled, full, share=0.12), (scaled, full)


def test_up_to_the_limit_the_rows_are_resampled_whole_as_before() -> None:
    predictions = labels(2_000, 0.8, seed=6)
    generator = np.random.default_rng(11)
    values = [
        float(np.mean(predictions.y_true[index] == predictions.predicted[index]))
        for index in (generator.integers(0, 2_000, 2_000) for _ in range(300))
    ]

    found = metric_interval("accuracy", predictions, confidence=0.9, rounds=300, seed=11)

    assert found == tuple(np.quantile(values, [0.05, 0.95]))
