"""The governance gates on every known-answer dataset: no block of a fair model, a block of an unfair one,
and the leak guard catching a leaked target but not a harmless forbidden column.

Each dataset's champion is the training path's (``champion`` fixture). The sensitive column is added to its
test rows (it is not a feature, as the spec allows), with an odd name: spaces, brackets and a non-ASCII letter.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airflow_mlc.core.governance import fairness_check, permutation_importance_of
from airflow_mlc.core.metrics import predict
from airflow_mlc.core.train import fit
from airflow_mlc.spec import ExplanationsSpec, FairnessSpec
from tests.decisions.datasets import DATASETS

pytestmark = pytest.mark.decisions

SENSITIVE = "Group (self-reported) ü"


def fairness_for(trained) -> FairnessSpec:
    """error_rate between groups for a classification; MAE for a regression, its gap bounded at a quarter of it."""
    if trained.spec.task == "classification":
        return FairnessSpec(sensitive=[SENSITIVE], metric="error_rate", max_gap=0.15, min_group_rows=30)
    mae = float(
        np.mean(
            np.abs(
                trained.test[trained.spec.target] - trained.model.predict(trained.test[trained.spec.features.columns])
            )
        )
    )
    return FairnessSpec(sensitive=[SENSITIVE], metric="mae", max_gap=0.25 * mae, min_group_rows=30)


def predictions_of(trained):
    spec = trained.spec
    return predict(trained.model, trained.test, spec.features.columns, spec.target, spec.task, trained.positive)


@pytest.mark.parametrize("name", DATASETS)
def test_groups_drawn_at_random_are_not_judged_unfair(name, champion) -> None:
    trained = champion(name)
    predictions = predictions_of(trained)
    groups = np.where(trained.dataset.rng(0, 21).random(len(trained.test)) < 0.5, "A", "B")
    check = fairness_check(fairness_for(trained), predictions, trained.test.assign(**{SENSITIVE: groups}))

    assert not check.blocked, check.reasons
    sizes = pd.Series(groups).value_counts()
    assert check.details["columns"][SENSITIVE]["judged"] == sorted(
        sizes[sizes >= 30].index
    )  # small test sets: none judged


@pytest.mark.parametrize("name", DATASETS)
def test_a_group_the_model_serves_badly_is_named_and_blocks(name, champion) -> None:
    trained = champion(name)
    predictions = predictions_of(trained)
    if trained.spec.task == "classification":
        badly = predictions.y_true.astype(str) != predictions.predicted.astype(str)
    else:
        errors = np.abs(predictions.y_true - predictions.predicted)
        badly = errors >= np.quantile(errors, 0.7)
    # the group "served badly" holds the rows the model gets most wrong, and a few others
    groups = np.where(badly | (trained.dataset.rng(0, 22).random(len(badly)) < 0.1), "served badly", "served well")
    check = fairness_check(fairness_for(trained), predictions, trained.test.assign(**{SENSITIVE: groups}))

    measured = check.details["columns"][SENSITIVE]
    if min(pd.Series(groups).value_counts()) < 30:
        pytest.skip(f"{name}: the model is wrong on too few test rows for a group of 30")
    assert check.blocked and measured["highest"] == "served badly", check.reasons
    assert f"between {SENSITIVE}='served badly'" in check.reasons[0]


@pytest.mark.parametrize("name", DATASETS)
def test_a_leaked_target_the_model_relies_on_is_caught_and_a_harmless_forbidden_column_is_not(name, champion) -> None:
    # The known answer needs a model that depends on the leak: the dataset's own features are shuffled, so the
    # leak is all the signal there is. (A leak that the model does not need, because other features already
    # predict as well, does not change the metric when shuffled, and permutation importance cannot see it.)
    trained = champion(name)
    spec, rng = trained.spec, trained.dataset.rng(0, 23)
    codes = {label: code for code, label in enumerate(sorted(trained.train[spec.target].astype(str).unique()))}

    def with_columns(frame: pd.DataFrame) -> pd.DataFrame:
        target = frame[spec.target]
        leak = target.astype(float) if spec.task == "regression" else target.astype(str).map(codes).astype(float)
        scale = float(np.std(leak)) or 1.0
        frame = frame.assign(**{c: rng.permutation(frame[c].to_numpy()) for c in spec.features.columns})
        return frame.assign(
            **{
                "leak (target copy)": leak + rng.normal(0, 0.01 * scale, len(frame)),
                "row id": rng.normal(size=len(frame)),
            }
        )

    features = spec.features.model_copy(update={"numeric": [*spec.features.numeric, "leak (target copy)", "row id"]})
    explained = spec.model_copy(update={"features": features})
    train, test = with_columns(trained.train), with_columns(trained.test)
    model = fit(explained, train)[0]
    forbidden = ExplanationsSpec(forbidden=["leak (target copy)", "row id"], top=3)

    check = permutation_importance_of(explained, model, test, trained.positive, forbidden)

    assert check.blocked and "'leak (target copy)'" in check.reasons[0], check.details["ranking"][:4]
    assert len(check.reasons) == 1  # the row id, however it ranks, does not matter: not blocked for it
