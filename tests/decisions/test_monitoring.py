"""Monitoring: stationary windows request no retraining; a clear covariate or concept shift requests one."""

from __future__ import annotations

import numpy as np
import pytest

from airflow_mlc.core.metrics import compute, predict
from tests.decisions.datasets import DATASETS, SEGMENTS, SHIFT_KINDS
from tests.decisions.harness import monitor, quality

pytestmark = pytest.mark.decisions

#: Stationary windows checked per dataset: three trials of a bundled set, three windows of a generated one.
STATIONARY_WINDOWS = 3
#: The goal is at most 5 % false alarms: one alarm in three windows can be chance, two cannot (0.7 % at 5 %).
MAX_ALARMS = 1


@pytest.mark.parametrize("name", DATASETS)
def test_stationary_windows_request_no_retraining(name, champion) -> None:
    dataset = DATASETS[name]
    alarms = []
    for trial, index in dataset.window_ids(STATIONARY_WINDOWS):
        window = dataset.window(trial, index)
        verdict = monitor(champion(name, trial), window)
        if verdict.requested:
            alarms.append(f"window {trial}/{index} of {len(window)} rows: {verdict.describe()}")

    assert len(alarms) <= MAX_ALARMS, "\n".join(alarms)


@pytest.mark.parametrize("kind", SHIFT_KINDS)
@pytest.mark.parametrize("name", DATASETS)
def test_a_clear_shift_requests_retraining(name, kind, champion) -> None:
    dataset = DATASETS[name]
    trial, index = dataset.window_ids(STATIONARY_WINDOWS + 1)[-1]
    trained = champion(name, trial)
    window = dataset.shifted(dataset.window(trial, index), kind, trained.train, seed=trial)

    verdict = monitor(trained, window)

    assert verdict.requested, verdict.describe()
    if kind == "covariate":  # every drift column moved: the drift check must see it, whatever the labels say
        assert verdict.drift_detected, verdict.describe()
    else:  # the features did not move: the champion's loss of quality is what must ask
        assert verdict.degraded, verdict.describe()


# --- known answers behind two rules of the quality check -----------------------------------------------
# Each test first checks its known answer (the premise), then the product's decision.


def known(condition: bool, problem: str) -> None:
    """Check a premise of a known answer: a failure here fails the test, whatever its xfail mark says."""
    if not condition:
        pytest.fail(f"the known answer does not hold: {problem}")


def test_a_window_without_a_rare_class_is_not_a_loss_of_quality(champion) -> None:
    """A macro average over the classes a window holds: a class it lacks adds no F1 of 0 for a few predictions.

    Averaged over the true and predicted classes, this window scored f1_macro 0.58 against 0.84 at
    evaluation (degraded), while every class it holds was predicted better than at evaluation.
    """
    trained = champion("segments", 1)
    window = SEGMENTS.window(1, 0)
    features, target = trained.spec.features.columns, trained.spec.target
    # the known answer: on every class the window holds, the champion does at least as well as at evaluation
    known(SEGMENTS.missing not in set(window[target]), "the window holds the rare class")
    known(SEGMENTS.missing in set(trained.model.predict(window[features])), "the champion never predicts it")
    for label in sorted(set(window[target])):
        at_evaluation = _class_f1(trained, trained.test, label)
        known(_class_f1(trained, window, label) >= at_evaluation - 0.02, f"the champion got worse on {label!r}")
    accuracy = compute("accuracy", predict(trained.model, window, features, target, "classification"))
    known(accuracy >= trained.evaluation.metrics["accuracy"] - 0.02, "the champion's accuracy dropped")

    result = quality(trained, window)

    assert not result.degraded, result.reason


def _class_f1(trained, rows, label) -> float:
    predicted = trained.model.predict(rows[trained.spec.features.columns])
    truth = rows[trained.spec.target].to_numpy()
    hits = np.sum((predicted == label) & (truth == label))
    return float(2 * hits / (np.sum(predicted == label) + np.sum(truth == label)))


def test_a_lucky_evaluation_does_not_turn_most_stationary_windows_into_losses(champion) -> None:
    """The evaluation's own noise counts: its metric is an estimate on the test rows, not the champion's truth.

    This champion's evaluation measured pr_auc 0.60 on ~50 positives; on fresh windows of the same
    distribution it scores 0.46 on average. Taking the evaluation as exact flagged about two windows in three
    when this test was written (13 of 20, another trial of as lucky an evaluation); judged against the
    evaluation rows' own bootstrap, a few (2 of these 12).
    """
    dataset = DATASETS["fraud"]
    trained = champion("fraud", 60)
    spec = trained.spec
    windows = [dataset.window(60, 100 + i) for i in range(12)]
    fresh = [
        compute("pr_auc", predict(trained.model, w, spec.features.columns, spec.target, spec.task, 1)) for w in windows
    ]
    known(np.mean(fresh) < 0.85 * trained.quality_baseline, f"fresh windows score {np.mean(fresh):.3f} on average")

    flagged = [result.reason for result in (quality(trained, window) for window in windows) if result.degraded]

    assert len(flagged) <= len(windows) // 4, "\n".join(flagged)


def test_a_concept_change_is_seen_in_a_window_without_a_rare_class(champion) -> None:
    trained = champion("segments", 27)
    spec = trained.spec
    window = SEGMENTS.shifted(SEGMENTS.window(27, 1), "concept", trained.train, seed=27)
    held = set(window[spec.target])
    # the known answer: on the classes the window holds, the champion lost about 40 % of its f1_macro
    known(SEGMENTS.missing not in held, "the window holds the rare class")
    same_classes = trained.test[trained.test[spec.target].isin(held)]
    before = compute("f1_macro", predict(trained.model, same_classes, spec.features.columns, spec.target, spec.task))
    after = compute("f1_macro", predict(trained.model, window, spec.features.columns, spec.target, spec.task))
    known(after < 0.7 * before, f"f1_macro over the window's classes went from {before:.3f} to {after:.3f} only")

    result = quality(trained, window)

    assert result.degraded, result.reason
