"""Whole training runs through ``dag.test()``: the real task runner, a real MLflow registry (SQLite)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from airflow_mlc.testing import run_dag, task_states
from tests.conftest import BIKES_SPEC

pytestmark = pytest.mark.e2e
WINTER = {"window_start": "2011-01-01", "window_end": "2011-04-01"}


def make_spec(tmp_path: Path, data: dict):
    """Write ``data`` as the test's spec file (replacing an earlier one of that name) and load it."""
    from airflow_mlc.spec import load_spec

    data.setdefault("storage", {})["artifact_root"] = str(tmp_path / "artifacts")
    path = tmp_path / "specs" / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_spec(path)


def bikes_data(name: str, **changes) -> dict:
    data = yaml.safe_load(BIKES_SPEC.read_text())
    data["source"]["path"] = str(BIKES_SPEC.parent.parent / "data" / "bikeshare_hourly_2011.csv")
    data["model"]["search"]["n_iter"] = 2
    data.update(name=name, **changes)
    return data


def run_training(spec, conf: dict | None = None):
    """Run the spec's training DAG, as the DAG file builds it, once; returns the finished DagRun."""
    return run_dag(f"mlc_{spec.name}_train", conf=conf)


def registry():
    from airflow_mlc.hooks.mlflow import MLflowHook

    return MLflowHook().get_conn().activate()


def champion_version(client, name: str) -> str | None:
    from airflow_mlc.core.registry import CHAMPION, version_by_alias

    version = version_by_alias(client, name, CHAMPION)
    return str(version.version) if version is not None else None


def test_regression_run_promotes_and_a_worse_candidate_does_not(airflow_db: Path, tmp_path: Path) -> None:
    import mlflow
    import pandas as pd

    spec = make_spec(tmp_path, bikes_data("bikes_e2e"))
    first = run_training(spec, WINTER)
    assert str(first.state) == "success", task_states(first)

    client = registry()
    assert champion_version(client, "bikes_e2e") == "1"
    version = client.get_model_version("bikes_e2e", "1")
    assert version.tags["mlc.dag_id"] == "mlc_bikes_e2e_train"
    assert version.tags["mlc.run_id"] == first.run_id
    assert version.tags["mlc.window_end"] == "2011-04-01T00:00:00+00:00"
    assert version.tags["mlc.promoted"] == "true"
    trained = "Hist gradient boosting regressor trained on 2011-01-01 .. 2011-04-01 ("
    assert version.description.startswith(trained) and "\n\nPromoted to champion: rmse " in version.description
    assert Path(version.tags["mlc.train_data_uri"]).exists()
    run = client.get_run(version.run_id)
    assert run.data.metrics["eval_rmse"] < 150
    assert run.data.tags["mlc.run_id"] == first.run_id
    # each version's permutation importance, logged with its run (docs/governance.md)
    importance = {k.removeprefix("importance_"): v for k, v in run.data.metrics.items() if k.startswith("importance_")}
    assert set(importance) == set(spec.features.columns) and max(importance, key=importance.get) in ("hr", "temp")
    # each version's model card, with every section, logged with its run (docs/governance.md#model-cards)
    from airflow_mlc.core.model_card import SECTIONS

    card = mlflow.artifacts.load_text(version.tags["mlc.model_card"])
    assert version.tags["mlc.model_card"] == f"runs:/{version.run_id}/model_card/model_card.md"
    assert [line[3:] for line in card.splitlines() if line.startswith("## ")] == list(SECTIONS)
    assert "**Promoted to champion**" in card
    assert f"| training snapshot | {version.tags['mlc.train_data_uri']} |" in card
    page = mlflow.artifacts.load_text(f"runs:/{version.run_id}/model_card/model_card.html")
    assert page.startswith("<!DOCTYPE html>") and "<h2>Importance</h2>" in page
    governance = mlflow.artifacts.load_dict(f"runs:/{version.run_id}/evaluation/governance.json")
    ranking = governance["explanations"]["details"]["ranking"]
    assert [entry["feature"] for entry in ranking] == sorted(importance, key=importance.get, reverse=True)

    model = mlflow.pyfunc.load_model("models:/bikes_e2e@champion")
    rows = pd.read_parquet(version.tags["mlc.test_data_uri"])
    assert model.predict(rows[spec.features.columns]).shape == (len(rows),)

    snapshot_dir = tmp_path / "artifacts" / "bikes_e2e" / "mlc_bikes_e2e_train"
    assert len(list(snapshot_dir.glob("*/ingest/snapshot.parquet"))) == 1
    assert len(list(snapshot_dir.glob("*/validate/validation.html"))) == 1

    dummy = bikes_data("bikes_e2e")
    dummy["model"] = {"estimator": "sklearn.dummy.DummyRegressor", "params": {}}
    worse = run_training(make_spec(tmp_path, dummy), WINTER)
    assert str(worse.state) == "success", task_states(worse)
    assert champion_version(client, "bikes_e2e") == "1"
    challenger = client.get_model_version_by_alias("bikes_e2e", "challenger")
    assert challenger.version == 2
    assert challenger.tags["mlc.promoted"] == "false"
    assert "does not beat the champion" in challenger.tags["mlc.promotion_reason"]
    assert challenger.description.startswith("Dummy regressor trained on 2011-01-01 .. 2011-04-01 (")
    assert "\n\nRejected: rmse " in challenger.description
    assert "\n\nWhy: the evaluation failed:\n- does not beat the champion" in challenger.description
    rejected_card = mlflow.artifacts.load_text(challenger.tags["mlc.model_card"])
    assert "**Not promoted**: gates failed: does not beat the champion" in rejected_card
    assert "| the champion |" in rejected_card

    # a rollback notes the move in both descriptions and leaves the decision tags alone
    rolled = run_dag("mlc_bikes_e2e_rollback", conf={"target_version": "2", "reason": "try the dummy"})
    assert str(rolled.state) == "success" and champion_version(client, "bikes_e2e") == "2"
    restored, left = client.get_model_version("bikes_e2e", "2"), client.get_model_version("bikes_e2e", "1")
    assert restored.tags == challenger.tags and left.tags == version.tags
    assert restored.description.startswith(challenger.description + "\n\nRestored as champion on ")
    assert restored.description.endswith(", replacing v1: try the dummy.")
    assert left.description.startswith(version.description + "\n\nRolled back from champion on ")
    assert left.description.endswith(", to v2: try the dummy.")

    # the decision history, exported as JSON and as CSV, reads back the same (docs/governance.md)
    from airflow_mlc.cli import main as command
    from airflow_mlc.core.audit import read_history

    events = {}
    for file_format in ("json", "csv"):
        output = tmp_path / f"history.{file_format}"
        arguments = ["history", "--spec", str(tmp_path / "specs" / "bikes_e2e.yaml"), "--format", file_format]
        assert command([*arguments, "--output", str(output)]) == 0
        events[file_format] = read_history(output.read_text(), file_format)
    assert events["json"] == events["csv"]
    found = [(e.kind, e.version, e.outcome) for e in events["json"]]
    assert found == [
        ("decision", "1", "promoted"),
        ("promotion", "1", "first champion"),
        ("decision", "2", "rejected"),
        ("rollback", "2", "champion v1 -> v2"),
    ], found
    decision, _, rejected, rollback = events["json"]
    assert decision.run_id == first.run_id and decision.details["mlc.score_metric"] == "rmse"
    assert "does not beat the champion" in rejected.reason
    assert rollback.reason == "try the dummy" and rollback.by and rollback.at > rejected.at


def test_classification_run_promotes_a_model_that_predicts(airflow_db: Path, tmp_path: Path) -> None:
    import mlflow
    import pandas as pd
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame["size_band"] = pd.cut(frame["mean_radius"], 3, labels=["small", "medium", "large"]).astype(str)
    frame.to_csv(tmp_path / "cancer.csv", index=False)
    features = ["mean_radius", "mean_texture", "mean_smoothness", "worst_area"]
    spec = make_spec(
        tmp_path,
        {
            "name": "cancer_e2e",
            "task": "classification",
            "source": {"path": str(tmp_path / "cancer.csv")},
            "target": "target",
            "features": {"numeric": features, "categorical": ["size_band"]},
            "model": {
                "estimator": "sklearn.linear_model.LogisticRegression",
                "params": {"max_iter": 500},
                "search": {"method": "grid", "cv": 3, "space": {"C": [0.1, 1.0]}},
            },
            "split": {"method": "random", "test_size": 0.25, "seed": 7},
            "gates": {"metric": "f1", "min": 0.8},
            "contract": {"min_rows": 100, "categories": {"size_band": ["small", "medium", "large"]}},
        },
    )
    dag_run = run_training(spec)
    assert str(dag_run.state) == "success", task_states(dag_run)
    client = registry()
    assert champion_version(client, "cancer_e2e") == "1"
    run = client.get_run(client.get_model_version("cancer_e2e", "1").run_id)
    assert {"eval_accuracy", "eval_f1", "eval_roc_auc", "eval_precision", "eval_recall"} <= set(run.data.metrics)
    model = mlflow.pyfunc.load_model("models:/cancer_e2e@champion")
    predictions = model.predict(frame[[*features, "size_band"]].head(10))
    assert predictions.shape == (10,)
    assert set(predictions) <= {0, 1}


def rename_target(data: dict) -> None:
    """A spec whose target column the data does not have."""
    data["target"] = "riders"
    data["contract"]["ranges"]["riders"] = data["contract"]["ranges"].pop("bikers")


@pytest.mark.parametrize(
    ("change", "conf", "failed_task", "message"),
    [
        (rename_target, WINTER, "validate", "column 'riders': required by the spec but missing"),
        (
            lambda d: None,
            {"window_start": "1999-01-01", "window_end": "1999-02-01"},
            "ingest",
            "no rows in the data window",
        ),
        (
            lambda d: d["model"].update(estimator="sklearn.ensemble.NoSuchRegressor"),
            WINTER,
            "train",
            "has no estimator class 'NoSuchRegressor'",
        ),
    ],
    ids=["missing-target", "empty-window", "unknown-estimator"],
)
def test_bad_input_fails_clearly_and_moves_no_alias(
    airflow_db: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str], change, conf, failed_task, message
) -> None:
    name = f"bad_{failed_task}"
    data = bikes_data(name)
    change(data)
    dag_run = run_training(make_spec(tmp_path, data), conf)
    output = capfd.readouterr()
    assert str(dag_run.state) == "failed"
    assert task_states(dag_run)[failed_task] == "failed"
    assert message in output.out + output.err
    client = registry()
    assert champion_version(client, name) is None
    assert client.search_model_versions(f"name = '{name}'") == []


def test_dry_run_trains_but_changes_no_alias(airflow_db: Path, tmp_path: Path) -> None:
    spec = make_spec(tmp_path, bikes_data("bikes_dry"))
    dag_run = run_training(spec, {**WINTER, "dry_run": True})
    assert str(dag_run.state) == "success", task_states(dag_run)
    client = registry()
    assert champion_version(client, "bikes_dry") is None
    assert client.search_model_versions("name = 'bikes_dry'") == []


def test_a_run_for_a_past_date_reads_that_dates_window(airflow_db: Path, tmp_path: Path) -> None:
    """As a backfill does: no window in the form, so the window is the lookback before the run's data end."""
    from datetime import datetime, timezone

    make_spec(tmp_path, bikes_data("bikes_past"))
    dag_run = run_dag("mlc_bikes_past_train", logical_date=datetime(2011, 4, 1, tzinfo=timezone.utc))
    assert str(dag_run.state) == "success", task_states(dag_run)
    version = registry().get_model_version("bikes_past", "1")
    assert version.tags["mlc.window_start"] == "2011-01-01T00:00:00+00:00"
    assert version.tags["mlc.window_end"] == "2011-04-01T00:00:00+00:00"


def test_a_fairness_gate_blocks_a_model_it_finds_unfair_and_passes_one_it_does_not(
    airflow_db: Path, tmp_path: Path
) -> None:
    # the bikes model's MAE differs between working days and other days: a gap of 0.001 is too much, 1,000 is not
    strict = bikes_data("bikes_fair")
    strict["gates"] = {**strict["gates"], "fairness": {"sensitive": ["workingday"], "metric": "mae", "max_gap": 0.001}}
    spec = make_spec(tmp_path, strict)
    blocked = run_training(spec, WINTER)
    assert str(blocked.state) == "success", task_states(blocked)
    client = registry()
    assert champion_version(client, "bikes_fair") is None
    first = client.get_model_version("bikes_fair", "1")
    assert first.tags["mlc.promoted"] == "false" and "fairness: mae differs by " in first.tags["mlc.promotion_reason"]
    assert first.tags["mlc.fairness"].startswith("blocked: fairness: mae differs by ")
    assert "between workingday=" in first.tags["mlc.fairness"]

    lenient = bikes_data("bikes_fair")
    lenient["gates"] = {**lenient["gates"], "fairness": {"sensitive": ["workingday"], "metric": "mae", "max_gap": 1000}}
    assert str(run_training(make_spec(tmp_path, lenient), WINTER).state) == "success"
    assert champion_version(client, "bikes_fair") == "2"
    assert (
        client.get_model_version("bikes_fair", "2")
        .tags["mlc.fairness"]
        .startswith("fairness: mae gaps between groups within 1000 (workingday ")
    )
