"""Promotion: a good champion is never replaced by a worse, label-shuffled or trivial model; a weak one is."""

from __future__ import annotations

import pytest

from airflow_mlc.errors import BadInputError
from tests.decisions.datasets import DATASETS
from tests.decisions.harness import WRONG_CHALLENGERS, promotion

pytestmark = pytest.mark.decisions

TRIALS = (0, 1)


@pytest.mark.parametrize("kind", WRONG_CHALLENGERS)
@pytest.mark.parametrize("name", DATASETS)
def test_a_good_champion_is_not_replaced_by_a_worse_model(name, kind, champion) -> None:
    for trial in TRIALS:
        trained = champion(name, trial)
        try:
            evaluation = promotion(trained, trained.challenger(kind), trained.model)
        except BadInputError as exc:  # the gate metric is undefined for the challenger: the task fails, no move
            pytest.fail(f"trial {trial}: the evaluation failed instead of rejecting the {kind} challenger: {exc}")

        assert not evaluation.passed, f"trial {trial}: {evaluation.reasons}"
        assert evaluation.scored_rows == len(trained.test)  # the champion never saw the test rows


@pytest.mark.parametrize("name", DATASETS)
def test_a_clearly_better_model_replaces_a_weak_champion(name, champion) -> None:
    for trial in TRIALS:
        trained = champion(name, trial)

        evaluation = promotion(trained, trained.challenger("good"), trained.challenger("worse"))

        assert evaluation.passed, f"trial {trial}: {evaluation.reasons}"
        assert evaluation.comparison is not None and evaluation.comparison["significant"]
