"""The training path (clean, split, fit, evaluate without a champion) promotes a model that beats a trivial one."""

from __future__ import annotations

import pytest

from tests.decisions.datasets import DATASETS

pytestmark = pytest.mark.decisions


@pytest.mark.parametrize("name", DATASETS)
def test_the_first_model_passes_the_gates_and_beats_a_trivial_model(name, champion) -> None:
    trained = champion(name)
    evaluation = trained.evaluation

    assert evaluation.passed, evaluation.reasons
    assert evaluation.baseline is not None and evaluation.baseline["significant"], evaluation.reasons
    value, trivial = evaluation.metrics[trained.metric], trained.trivial_metric()
    assert trivial is not None
    assert value > trivial if trained.spec.higher_is_better else value < trivial


@pytest.mark.parametrize("name", DATASETS)
def test_the_positive_class_is_the_one_the_spec_names_or_the_minority_class(name, champion) -> None:
    trained = champion(name)
    spec = trained.spec
    labels = trained.train[spec.target]
    if spec.task == "regression" or labels.nunique() != 2:
        assert trained.positive is None
    elif spec.positive_class is not None:
        assert trained.positive == spec.positive_class
    else:
        assert trained.positive == labels.value_counts().idxmin()
    assert trained.evaluation.positive_class == (None if trained.positive is None else str(trained.positive))
