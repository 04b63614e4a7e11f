"""Rollout: the live judgement of a challenger, on every dataset, in shadow mode (paired) and as a canary (A/B).

The live rows are two stationary windows of the dataset (rows neither model trained on) with an entity key
added, since most datasets have none. In canary mode the challenger serves half of them, chosen by the
stable hash of that key, and the champion the other half. Known answers:

* a challenger fitted on the dataset's weak features only, beside the spec's model: rolled back;
* the spec's model beside a champion fitted on the weak features: promoted;
* the same model on both sides (an A/A test: in canary mode, two disjoint halves of the rows): never
  promoted nor rolled back, and as a canary it advances to the next step;
* a challenger fitted on 90 % of the training rows: never promoted (it cannot be better than the champion,
  which had every row; it may be rolled back, when the live rows show it slightly but surely worse);
* on a window whose labels were shuffled (a concept change), a challenger as good as the champion was at its
  evaluation: rolled back, its own live quality fallen past ``monitoring.quality_tolerance``, even though it
  is no worse than the champion there.

A canary side with fewer labelled rows than ``gates.min_rows`` (the small bundled sets) is not judged: held.
"""

from __future__ import annotations

import pandas as pd
import pytest

from airflow_mlc.core.metrics import Predictions, predict
from airflow_mlc.core.rollout import Judgement, canary_rows, judge
from airflow_mlc.spec import ModelLifecycleSpec
from tests.decisions.datasets import DATASETS
from tests.decisions.harness import Trained

pytestmark = pytest.mark.decisions

KEY = "entity id"
VERSIONS = ("2", "1")


def live_rows(trained: Trained) -> pd.DataFrame:
    dataset = trained.dataset
    window = pd.concat([dataset.window(trial, index) for trial, index in dataset.window_ids(2)], ignore_index=True)
    return window.assign(**{KEY: [f"e{i}" for i in range(len(window))]})


def rollout_spec(trained: Trained, mode: str) -> ModelLifecycleSpec:
    prediction = trained.spec.prediction
    rollout = prediction.rollout.model_copy(update={"mode": mode, "key": [KEY], "steps": [0.5, 1.0]})
    return trained.spec.model_copy(update={"prediction": prediction.model_copy(update={"rollout": rollout})})


def scored(trained: Trained, model: object, rows: pd.DataFrame) -> Predictions:
    spec = trained.spec
    return predict(model, rows, spec.features.columns, spec.target, spec.task, trained.positive)


def judged(trained: Trained, challenger: object, champion: object, mode: str, baseline: float | None = None):
    """The judgement of ``challenger`` against ``champion`` on the live rows, and whether both sides had enough."""
    spec, rows = rollout_spec(trained, mode), live_rows(trained)
    challenger_rows = champion_rows = rows
    if mode == "canary":
        served = canary_rows(rows, [KEY], spec.prediction.rollout.steps[0], spec.split.seed)
        challenger_rows, champion_rows = rows[served], rows[~served]
    judgement = judge(
        spec,
        scored(trained, challenger, challenger_rows),
        scored(trained, champion, champion_rows),
        baseline,
        0,
        VERSIONS,
        paired=mode == "shadow",
    )
    return judgement, min(len(challenger_rows), len(champion_rows)) >= spec.gates.min_rows


def expect(judgement: Judgement, enough: bool, action: str) -> None:
    if not enough:
        assert judgement.action == "hold" and "not judged" in judgement.reason, judgement.reason
    else:
        assert judgement.action == action, judgement.reason


@pytest.mark.parametrize("mode", ["shadow", "canary"])
@pytest.mark.parametrize("name", DATASETS)
def test_a_worse_challenger_is_rolled_back_and_a_better_one_promoted(name, mode, champion) -> None:
    trained = champion(name, 0)
    worse, good = trained.challenger("worse"), trained.model

    expect(*judged(trained, worse, good, mode), "roll_back")
    expect(*judged(trained, good, worse, mode), "promote")


@pytest.mark.parametrize("mode", ["shadow", "canary"])
@pytest.mark.parametrize("name", DATASETS)
def test_an_equal_challenger_is_never_moved_and_a_canary_of_it_advances(name, mode, champion) -> None:
    trained = champion(name, 0)

    expect(*judged(trained, trained.model, trained.model, mode), "advance" if mode == "canary" else "hold")
    similar, _ = judged(trained, trained.challenger("similar"), trained.model, mode)
    assert similar.action != "promote", similar.reason


@pytest.mark.parametrize("name", DATASETS)
def test_a_challenger_whose_live_quality_fell_with_the_concept_is_rolled_back(name, champion) -> None:
    trained = champion(name, 0)
    spec, rows = trained.spec, live_rows(trained)
    changed = trained.dataset.shifted(rows, "concept", trained.train)

    judgement = judge(
        rollout_spec(trained, "shadow"),
        scored(trained, trained.challenger("good"), changed),
        scored(trained, trained.model, changed),
        trained.quality_baseline,
        0,
        VERSIONS,
    )

    assert judgement.action == "roll_back", judgement.reason
    assert "worse than at its evaluation" in judgement.reason
    assert f"monitoring.quality_tolerance {spec.monitoring.quality_tolerance:.0%}" in judgement.reason
