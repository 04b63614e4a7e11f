"""Known answers for the governance gates: bias between groups, forbidden top features, slices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airflow_mlc.core.evaluate import ChampionModel, evaluate
from airflow_mlc.core.governance import slice_check, slices_summary
from airflow_mlc.core.metrics import Predictions, compute
from airflow_mlc.core.prepare import split
from airflow_mlc.errors import BadInputError, DataError
from airflow_mlc.spec import parse_spec

pytestmark = pytest.mark.unit


def loan_spec(**changes) -> object:
    """Approve (``yes``) or not from ``income`` and ``debt``; ``group`` is a sensitive column, not a feature."""
    data = {
        "name": "loans",
        "task": "classification",
        "source": {"path": "x.csv"},
        "target": "approved",
        "positive_class": "yes",
        "features": {"numeric": ["income", "debt"]},
        "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "split": {"method": "random", "seed": 3},
        "gates": {"metric": "accuracy", "bootstrap_rounds": 300},
    }
    for key, value in changes.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return parse_spec(data)


def loans(rows: int, seed: int, minority: float = 0.3, reversed_minority: bool = False) -> pd.DataFrame:
    """Applicants of groups A and B (``minority`` of them B); the label follows income minus debt.

    With ``reversed_minority``, group B's labels follow the opposite rule: a model that cannot see the
    group, trained mostly on A, serves B badly.
    """
    generator = np.random.default_rng(seed)
    income, debt = generator.normal(size=rows), generator.normal(size=rows)
    group = np.where(generator.random(rows) < minority, "B", "A")
    score = income - debt + generator.normal(0, 0.5, rows)
    if reversed_minority:
        score = np.where(group == "B", -score, score)
    return pd.DataFrame({"income": income, "debt": debt, "group": group, "approved": np.where(score > 0, "yes", "no")})


def fitted(spec, train: pd.DataFrame):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression().fit(train[spec.features.columns], train[spec.target])


def judged(spec, frame: pd.DataFrame, champion=None):
    train, test = split(frame, spec)
    return evaluate(spec, fitted(spec, train), test, spec.gates, champion, train=train)


FAIRNESS = {"sensitive": ["group"], "metric": "error_rate", "max_gap": 0.1}


def test_a_model_that_serves_one_group_badly_is_blocked_naming_the_groups_and_the_gap() -> None:
    spec = loan_spec(gates={"metric": "accuracy", "bootstrap_rounds": 300, "fairness": FAIRNESS})

    result = judged(spec, loans(3000, seed=1, minority=0.2, reversed_minority=True))

    assert not result.passed
    fairness = result.governance["fairness"]
    assert fairness["blocked"] and fairness["details"]["columns"]["group"]["highest"] == "B"
    gap = fairness["details"]["columns"]["group"]["gap"]
    groups = fairness["details"]["columns"]["group"]["groups"]
    assert gap == pytest.approx(groups["B"]["value"] - groups["A"]["value"]) and gap > 0.5
    (reason,) = [r for r in result.reasons if r.startswith("fairness:")]
    assert f"error_rate differs by {gap:.4g} between group='B'" in reason and "max_gap 0.1" in reason


def test_the_same_model_on_data_that_treats_both_groups_alike_passes() -> None:
    spec = loan_spec(gates={"metric": "accuracy", "bootstrap_rounds": 300, "fairness": FAIRNESS})
    passed = 0
    for seed in range(10):  # no false block: groups of about 180 and 420 test rows, the same error rate
        result = judged(spec, loans(3000, seed=100 + seed))
        passed += result.passed
        assert result.governance["fairness"]["details"]["columns"]["group"]["gap"] < 0.1
    assert passed == 10


def test_selection_rate_gap_and_groups_too_small_to_judge() -> None:
    frame = loans(3000, seed=2, minority=0.3)
    frame.loc[frame.group == "B", "income"] -= 2.0  # B applicants earn less: far fewer are approved
    frame.loc[frame.index[:8], "group"] = "C"  # a group of a few rows: reported, not judged
    fairness = {**FAIRNESS, "metric": "selection_rate", "max_gap": 0.2}
    spec = loan_spec(gates={"metric": "accuracy", "bootstrap_rounds": 300, "fairness": fairness})

    result = judged(spec, frame)

    measured = result.governance["fairness"]["details"]["columns"]["group"]
    assert "C" in measured["groups"] and measured["judged"] == ["A", "B"]
    assert measured["lowest"] == "B" and measured["highest"] == "A" and measured["gap"] > 0.2
    assert not result.passed and result.governance["fairness"]["blocked"]


def test_a_one_class_fairness_metric_needs_a_binary_model_and_the_sensitive_column_must_exist() -> None:
    frame = loans(1200, seed=3)
    frame["approved"] = np.where(frame.income > 0.8, "high", np.where(frame.income > -0.8, "mid", "low"))
    spec = loan_spec(positive_class=None, gates={"metric": "accuracy", "fairness": {**FAIRNESS, "metric": "recall"}})
    with pytest.raises(BadInputError, match="'recall' needs a binary classification; this model has 3 classes"):
        judged(spec, frame)

    missing = loan_spec(gates={"metric": "accuracy", "fairness": {**FAIRNESS, "sensitive": ["region"]}})
    with pytest.raises(DataError, match="gates.fairness.sensitive: column 'region' is not in the test rows"):
        judged(missing, loans(600, seed=4))


def test_a_forbidden_feature_among_the_top_ones_blocks_and_one_that_does_not_matter_does_not() -> None:
    frame = loans(2000, seed=5)
    generator = np.random.default_rng(55)  # not loans' seed: its first draw is the income
    frame["row_id"] = generator.normal(size=len(frame))  # noise: no importance
    frame["approved_code"] = (frame.approved == "yes") + generator.normal(0, 0.05, len(frame))  # the label, leaked
    features = {"numeric": ["income", "debt", "row_id", "approved_code"]}
    leaky = loan_spec(features=features, explanations={"forbidden": ["approved_code", "row_id"], "top": 2})

    result = judged(leaky, frame)

    explanations = result.governance["explanations"]
    assert explanations["details"]["ranking"][0]["feature"] == "approved_code"
    assert explanations["blocked"] and not result.passed
    (reason,) = explanations["reasons"]
    assert reason.startswith("explanations: the forbidden feature 'approved_code' is among the 2 most important")

    honest = loan_spec(features={"numeric": ["income", "debt", "row_id"]}, explanations={"forbidden": ["row_id"]})
    clean = judged(honest, frame)
    assert not clean.governance["explanations"]["blocked"] and clean.passed, clean.reasons
    ranking = [entry["feature"] for entry in clean.governance["explanations"]["details"]["ranking"]]
    assert ranking[-1] == "row_id" and set(ranking[:2]) == {"income", "debt"}


def test_importance_is_measured_and_recorded_by_default_without_blocking() -> None:
    result = judged(loan_spec(), loans(1500, seed=6))
    explanations = result.governance["explanations"]
    assert not explanations["blocked"] and explanations["reasons"] == []
    assert {entry["feature"] for entry in explanations["details"]["ranking"]} == {"income", "debt"}
    assert all(entry["mean"] > 0.1 for entry in explanations["details"]["ranking"])  # both matter a lot

    off = judged(loan_spec(explanations={"importance": False}), loans(1500, seed=6))
    assert "explanations" not in off.governance


def right_on(truth: np.ndarray, shares: dict[str, float], regions: np.ndarray, seed: int) -> Predictions:
    """Predictions right on about ``shares[region]`` of each region's rows."""
    generator = np.random.default_rng(seed)
    right = generator.random(len(truth)) < np.vectorize(shares.get)(regions)
    predicted = np.where(right, truth, np.where(truth == "yes", "no", "yes"))
    return Predictions("classification", truth, predicted, classes=("no", "yes"), positive="yes")


def test_a_challenger_better_overall_but_much_worse_on_one_slice_is_blocked_only_when_asked() -> None:
    generator = np.random.default_rng(8)
    rows = pd.DataFrame({"region": np.where(generator.random(2000) < 0.2, "north", "south")})
    truth = generator.choice(["no", "yes"], len(rows))
    champion = right_on(truth, {"north": 0.9, "south": 0.9}, rows.region.to_numpy(), seed=9)
    challenger = right_on(truth, {"north": 0.6, "south": 0.99}, rows.region.to_numpy(), seed=10)
    assert compute("accuracy", challenger) > compute("accuracy", champion)  # better overall

    report_only = loan_spec(gates={"metric": "accuracy", "slices": {"columns": ["region"]}})
    reported = slice_check(report_only, report_only.gates.slices, rows, challenger, champion)
    north = reported.details["columns"]["region"]["north"]
    assert north["candidate"] < 0.7 and north["champion"] > 0.85  # visible
    assert not reported.blocked and reported.reasons == []

    strict = loan_spec(gates={"metric": "accuracy", "slices": {"columns": ["region"], "max_loss": 0.1}})
    blocked = slice_check(strict, strict.gates.slices, rows, challenger, champion)
    assert blocked.blocked and blocked.details["columns"]["region"]["north"]["blocked"]
    assert not blocked.details["columns"]["region"]["south"]["blocked"]  # better there
    (reason,) = blocked.reasons
    assert reason.startswith("slices: on region='north'") and "(gates.slices.max_loss 10%)" in reason

    assert slices_summary(reported.as_dict()) == (
        f"worst slices: region='north': accuracy {north['candidate']:.4g} vs the champion's "
        f"{north['champion']:.4g} ({north['rows']} rows)"
    )
    assert slices_summary(blocked.as_dict()) == f"blocked: {reason}"

    tolerant = loan_spec(gates={"metric": "accuracy", "slices": {"columns": ["region"], "max_loss": 0.5}})
    assert not slice_check(tolerant, tolerant.gates.slices, rows, challenger, champion).blocked  # a 33% loss

    # a column may have any name, even one the check's own fields have
    odd = loan_spec(gates={"metric": "accuracy", "slices": {"columns": ["metric"], "max_loss": 0.1}})
    named = slice_check(odd, odd.gates.slices, rows.rename(columns={"region": "metric"}), challenger, champion)
    assert named.details["metric"] == "accuracy" and named.details["columns"]["metric"]["north"]["blocked"]


def test_slices_reach_the_verdict_of_an_evaluation() -> None:
    frame = loans(3000, seed=11)
    spec = loan_spec(gates={"metric": "accuracy", "slices": {"columns": ["group"], "max_loss": 0.1}})
    train, test = split(frame, spec)
    model = fitted(spec, train)
    alone = evaluate(spec, model, test, spec.gates, train=train)
    assert set(alone.governance["slices"]["details"]["columns"]["group"]) == {"A", "B"}  # the candidate alone, reported
    assert "champion" not in alone.governance["slices"]["details"]["columns"]["group"]["A"]
    same = evaluate(spec, model, test, spec.gates, ChampionModel(model, "1", train=train), train=train)
    assert not same.governance["slices"]["blocked"]  # equal everywhere: nothing worse
    assert same.governance["slices"]["details"]["columns"]["group"]["B"]["champion"] is not None
