"""Canary rollout through the DAGs: a stable split, a live loss rolled back, a live win promoted (docs/rollout.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_mlc.testing import run_dag, task_result, task_states
from tests.e2e.test_training_dag import WINTER, bikes_data, champion_version, make_spec, registry

pytestmark = pytest.mark.e2e

ROLLOUT = {"mode": "canary", "key": ["timestamp"], "steps": [0.25, 1.0]}


def rollout_data(**changes):
    data = bikes_data("bikes_canary", **changes)
    data["prediction"] = {"window_days": 7, "chunk_rows": 200, "keep_columns": ["timestamp"], "rollout": ROLLOUT}
    # April's rows drift from the winter a model learnt: no roll-back for its own loss of quality here, so an equal
    # challenger is seen to advance
    data["monitoring"] = {"quality_tolerance": None}
    return data


def predict(spec, end: str):
    run = run_dag(f"mlc_{spec.name}_predict", conf={"window_end": end})
    assert task_states(run)["predict"] == "success", task_states(run)
    return task_result(run, "predict")


def judged(spec, end: str) -> dict:
    run = run_dag(f"mlc_{spec.name}_monitor", conf={"window_end": end})
    assert task_states(run)["judge_rollout"] == "success", task_states(run)
    return task_result(run, "judge_rollout")


def test_a_canary_serves_its_share_is_rolled_back_on_a_loss_advances_when_even_and_a_winner_is_promoted(
    airflow_db: Path, tmp_path: Path
) -> None:
    import pandas as pd

    from airflow_mlc.core.audit import decision_history
    from airflow_mlc.core.registry import champion_history

    spec = make_spec(tmp_path, rollout_data())
    assert str(run_dag(f"mlc_{spec.name}_train", conf=WINTER).state) == "success"
    make_spec(tmp_path, rollout_data(model={"estimator": "sklearn.dummy.DummyRegressor"}))
    assert str(run_dag(f"mlc_{spec.name}_train", conf=WINTER).state) == "success"
    client = registry()
    assert champion_version(client, spec.name) == "1"
    assert str(client.get_model_version_by_alias(spec.name, "challenger").version) == "2"

    # step 1: the dummy challenger serves a stable quarter of the rows, chosen by their timestamp
    first = predict(spec, "2011-04-08")
    served = pd.read_parquet(first["uri"])
    canary = served["role"] == "canary"
    assert set(served.loc[canary, "model_version"]) == {"2"} and set(served.loc[~canary, "model_version"]) == {"1"}
    assert 0.15 < canary.mean() < 0.35 and first["canary"] == {"version": "2", "share": 0.25, "rows": int(canary.sum())}
    assert served.loc[canary, "prediction"].nunique() == 1  # the dummy's one prediction
    again = pd.read_parquet(predict(spec, "2011-04-08")["uri"])
    assert (again["role"] == served["role"]).all()  # re-running the interval gives the same split

    # the monitoring DAG judges it on the labelled rows after both models' data: worse, so rolled back to 0 %
    loss = judged(spec, "2011-04-15")
    assert loss["action"] == "roll_back" and loss["challenger"] == "2" and loss["champion"] == "1"
    assert "significantly worse than the champion on live data" in loss["reason"]
    # an A/B test: each model on the rows it served, the canary on about a quarter of them
    assert "independent resamples" in loss["reason"]
    rows = loss["live"]
    assert 0.15 < rows["challenger_rows"] / (rows["challenger_rows"] + rows["champion_rows"]) < 0.35
    version = client.get_model_version(spec.name, "2")
    assert version.tags["mlc.rollout_state"] == "rolled_back" and version.tags["mlc.rollout_reason"] == loss["reason"]
    after = pd.read_parquet(predict(spec, "2011-04-08")["uri"])
    assert set(after["role"]) == {"champion"} and set(after["model_version"]) == {"1"}
    assert champion_version(client, spec.name) == "1"

    # the champion trained again, identically: no better, no worse, so the canary advances to the next step
    make_spec(tmp_path, rollout_data())
    assert str(run_dag(f"mlc_{spec.name}_train", conf=WINTER).state) == "success"
    assert str(client.get_model_version_by_alias(spec.name, "challenger").version) == "3"
    even = judged(spec, "2011-04-15")
    assert (even["action"], even["next_step"], even["share"]) == ("advance", 1, 1.0), even["reason"]
    assert client.get_model_version(spec.name, "3").tags["mlc.rollout_step"] == "1"
    full = pd.read_parquet(predict(spec, "2011-04-08")["uri"])
    assert set(full["role"]) == {"canary"} and set(full["model_version"]) == {"3"}
    # at 100 % the champion serves no row: it is scored on the canary's rows, paired; even, so it holds
    last = judged(spec, "2011-04-15")
    assert last["action"] == "hold" and "neither better nor worse" in last["reason"], last["reason"]
    assert "paired resamples" in last["reason"] and last["live"]["champion_rows"] == last["live"]["challenger_rows"]

    # a spring model that missed the (here absurd) training margin is challenger; live, it wins and is promoted
    spring = {"window_start": "2011-03-01", "window_end": "2011-05-01", "min_improvement": 10}
    assert str(run_dag(f"mlc_{spec.name}_train", conf=spring).state) == "success"
    assert str(client.get_model_version_by_alias(spec.name, "challenger").version) == "4"
    win = judged(spec, "2011-05-15")
    assert win["action"] == "promote" and win["reason"].startswith("won on live data: rmse ")
    assert champion_version(client, spec.name) == "4"
    move = champion_history(client, spec.registry_experiment_name, spec.name)[-1]
    assert (move.kind, move.from_version, move.to_version) == ("promotion", "1", "4")
    assert move.reason == f"rollout: {win['reason']}"
    history = decision_history(client, spec)
    assert [e.kind for e in history].count("promotion") == 2
    assert [(e.version, e.outcome) for e in history if e.kind == "rollout"] == [
        ("2", "roll_back"),
        ("3", "advance"),
        ("4", "promote"),
    ]
