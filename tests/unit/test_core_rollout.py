"""Rollout: the canary split, and the live judgement of a challenger against the champion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airflow_mlc.core.metrics import Predictions
from airflow_mlc.core.rollout import canary_rows, canary_share, judge
from airflow_mlc.errors import DataError
from airflow_mlc.spec import parse_spec

pytestmark = pytest.mark.unit


def spec(mode: str = "canary", **gates):
    return parse_spec(
        {
            "name": "churn",
            "task": "classification",
            "source": {"path": "x.csv"},
            "target": "churn",
            "features": {"numeric": ["usage"]},
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "gates": {"metric": "accuracy", "bootstrap_rounds": 300, **gates},
            "prediction": {"rollout": {"mode": mode, "key": ["customer id"], "steps": [0.05, 0.25, 1.0]}},
        }
    )


def test_the_canary_split_is_stable_per_entity_and_grows_with_the_share() -> None:
    customers = pd.DataFrame({"customer id": [f"c{i}" for i in range(20_000)]})
    small = canary_rows(customers, ["customer id"], 0.05, seed=0)
    larger = canary_rows(customers, ["customer id"], 0.25, seed=0)

    assert 0.04 < small.mean() < 0.06 and 0.23 < larger.mean() < 0.27
    assert not (small & ~larger).any()  # served by the challenger at 5 %: still at 25 %
    shuffled = customers.sample(frac=1, random_state=1)  # other chunks, another order: the same entities
    again = canary_rows(shuffled, ["customer id"], 0.25, seed=0)
    assert (again == larger[shuffled.index]).all()
    assert not canary_rows(customers, ["customer id"], 0.0, seed=0).any()
    with pytest.raises(DataError, match=r"prediction.rollout.key: columns \['customer id'\] are missing"):
        canary_rows(customers.rename(columns={"customer id": "id"}), ["customer id"], 0.25, seed=0)


def test_an_entity_gets_the_same_model_however_a_read_typed_its_key() -> None:
    from decimal import Decimal

    ids = list(range(2_000))
    reads = [
        pd.DataFrame({"customer id": ids}),  # int64: a chunk without missing values
        pd.DataFrame({"customer id": [float(i) for i in ids]}),  # float64: a chunk with one
        pd.DataFrame({"customer id": pd.array(ids, dtype="Int64")}),
        pd.DataFrame({"customer id": [Decimal(i) for i in ids]}),  # a NUMERIC column through a DB driver
    ]
    served = [canary_rows(read, ["customer id"], 0.25, seed=0) for read in reads]
    assert 0.2 < served[0].mean() < 0.3
    assert all((split == served[0]).all() for split in served[1:])
    with_gap = canary_rows(pd.DataFrame({"customer id": [*map(float, ids[:-1]), np.nan]}), ["customer id"], 0.25, 0)
    assert (with_gap[:-1] == served[0][:-1]).all()

    flags = [i % 3 == 0 for i in ids]
    as_bool = canary_rows(pd.DataFrame({"customer id": ids, "vip": flags}), ["customer id", "vip"], 0.25, 0)
    for other in (pd.Series([*flags[:-1], None], dtype=object), pd.array([*flags[:-1], None], dtype="boolean")):
        with_none = canary_rows(pd.DataFrame({"customer id": ids, "vip": other}), ["customer id", "vip"], 0.25, 0)
        assert (with_none[:-1] == as_bool[:-1]).all()


def test_the_share_follows_the_challenger_s_state_and_step() -> None:
    canary = spec()
    assert canary_share(canary, {}) == 0.05  # a new challenger starts at the first step
    assert canary_share(canary, {"mlc.rollout_step": "1"}) == 0.25
    assert canary_share(canary, {"mlc.rollout_step": "9"}) == 1.0  # holds at the last
    assert canary_share(canary, {"mlc.rollout_state": "rolled_back", "mlc.rollout_step": "2"}) == 0.0


def right_on(truth: np.ndarray, share: float, seed: int) -> Predictions:
    generator = np.random.default_rng(seed)
    predicted = np.where(generator.random(len(truth)) < share, truth, np.where(truth == "yes", "no", "yes"))
    return Predictions("classification", truth, predicted, classes=("no", "yes"), positive="yes")


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    return np.random.default_rng(0).choice(["no", "yes"], 2000)


def test_a_challenger_better_on_live_rows_is_promoted_and_a_worse_one_rolled_back(truth) -> None:
    champion = right_on(truth, 0.80, seed=1)
    better = judge(spec(), right_on(truth, 0.90, seed=2), champion, 0.9, 0, ("2", "1"))
    assert better.action == "promote" and better.reason.startswith("won on live data: accuracy 0.89")

    worse = judge(spec(), right_on(truth, 0.70, seed=3), champion, 0.7, 1, ("2", "1"))
    assert worse.action == "roll_back" and "significantly worse than the champion on live data" in worse.reason
    assert worse.comparison["high"] < 0


def test_an_equal_challenger_advances_one_step_holds_at_the_last_and_never_moves_in_shadow(truth) -> None:
    champion = right_on(truth, 0.80, seed=4)
    same = right_on(truth, 0.80, seed=4)
    first = judge(spec(), same, champion, 0.8, 0, ("2", "1"))
    assert (first.action, first.next_step, first.share) == ("advance", 1, 0.25)
    assert "advances from 5% to 25%" in first.reason
    assert judge(spec(), same, champion, 0.8, 2, ("2", "1")).action == "hold"
    assert judge(spec("shadow"), same, champion, 0.8, 0, ("2", "1")).action == "hold"


def test_a_challenger_whose_own_live_quality_collapsed_is_rolled_back_even_beside_a_weak_champion(truth) -> None:
    champion, challenger = right_on(truth, 0.62, seed=5), right_on(truth, 0.62, seed=5)  # equally poor
    collapsed = judge(spec(), challenger, champion, 0.9, 0, ("2", "1"))  # it scored 0.9 at its evaluation
    assert collapsed.action == "roll_back"
    assert "worse than at its evaluation (0.9; monitoring.quality_tolerance 20%)" in collapsed.reason


def test_too_few_labelled_rows_decide_nothing(truth) -> None:
    few = judge(spec(), right_on(truth[:20], 0.9, 6), right_on(truth[:20], 0.5, 7), 0.9, 0, ("2", "1"))
    assert few.action == "hold" and "fewer than gates.min_rows (30)" in few.reason


def test_a_canary_is_judged_on_the_rows_each_model_served_by_independent_bootstraps(truth) -> None:
    served, kept = truth[:400], truth[400:]  # the canary's rows and the champion's: different rows
    better = judge(spec(), right_on(served, 0.92, 8), right_on(kept, 0.80, 9), 0.9, 0, ("2", "1"), paired=False)
    assert better.action == "promote", better.reason
    assert "on 400 and 1600 rows" in better.reason and "independent resamples" in better.reason
    assert better.live["challenger_rows"] == 400 and better.live["champion_rows"] == 1600
    assert better.comparison["champion_rows"] == 1600

    worse = judge(spec(), right_on(served, 0.66, 10), right_on(kept, 0.80, 11), 0.7, 0, ("2", "1"), paired=False)
    assert worse.action == "roll_back" and worse.comparison["high"] < 0


def test_an_equal_canary_on_its_own_rows_is_rarely_moved_either_way(truth) -> None:
    # as good a model on other rows: at 95 % each wrong move should happen about 2.5 % of the time
    served, kept = truth[:400], truth[400:]
    actions = [
        judge(
            spec(), right_on(served, 0.8, seed), right_on(kept, 0.8, 1000 + seed), 0.8, 0, ("2", "1"), paired=False
        ).action
        for seed in range(40)
    ]
    assert actions.count("advance") >= 36, actions


def test_a_canary_that_served_too_few_labelled_rows_is_not_judged(truth) -> None:
    few = judge(spec(), right_on(truth[:20], 0.3, 14), right_on(truth[20:], 0.9, 15), 0.9, 0, ("2", "1"), paired=False)
    assert few.action == "hold" and few.reason == (
        "the challenger served 20 labelled rows, fewer than gates.min_rows (30): not judged"
    )
