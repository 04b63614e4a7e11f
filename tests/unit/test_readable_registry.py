"""A readable registry: version descriptions, named runs, documented tags, rollbacks that keep the decision tags."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from airflow_mlc.core import tracking
from airflow_mlc.core.registry import (
    CHAMPION,
    Move,
    MoveLog,
    estimator_words,
    readable_time,
    readable_window,
    register_and_promote,
    rollback,
    rollback_note,
    version_by_alias,
    version_description,
)
from tests.conftest import ROOT

pytestmark = pytest.mark.unit

COMPARED = {
    tracking.TAG_WINDOW_START: "2011-03-01T00:00:00+00:00",
    tracking.TAG_WINDOW_END: "2011-05-15T00:00:00+00:00",
    tracking.TAG_SCORE_METRIC: "f1",
    tracking.TAG_SCORE: "0.84123",
    tracking.TAG_CHAMPION_SCORE: "0.80311",
    tracking.TAG_COMPARED_WITH: "1",
    tracking.TAG_SCORED_ON: "the 420 test rows newer than the champion's data (which ends 2011-03-01T00:00:00+00:00)",
    tracking.TAG_SCORED_ROWS: "420",
    tracking.TAG_IMPROVEMENT: "0.03812",
    tracking.TAG_CI_LOW: "0.01123",
    tracking.TAG_CI_HIGH: "0.06731",
    tracking.TAG_CONFIDENCE: "0.95",
}
TRAINED = "Random forest classifier trained on 2011-03-01 .. 2011-05-15 (2,100 rows)."
EVIDENCE = (
    "f1 0.841 vs champion v1 0.803 (improvement +0.0381, 95 % CI +0.0112 .. +0.0673) on 420 rows neither trained on."
)


def describe(tags: dict[str, str], **decision) -> str:
    return version_description(
        tags, estimator="sklearn.ensemble.RandomForestClassifier", train_rows=2100, **{"reason": "", **decision}
    )


def test_a_promotion_says_what_was_trained_and_the_comparison() -> None:
    text = describe(COMPARED, promoted=True, passed=True, reason="gates passed: significantly better")
    assert text == f"{TRAINED}\n\nPromoted to champion: {EVIDENCE}"


def test_a_candidate_not_promoted_says_why() -> None:
    checks = [
        "not significantly better than the champion: f1 0.82 vs the champion's 0.84",
        "beats a trivial model: f1 0.82 vs a trivial model's 0.5",
    ]
    rejected = describe(
        {**COMPARED, tracking.TAG_IMPROVEMENT: "-0.02", tracking.TAG_CI_LOW: "-0.05", tracking.TAG_CI_HIGH: "0.01"},
        promoted=False,
        passed=False,
        reason="gates failed: " + "; ".join(checks),
        checks=checks,
    )
    assert rejected.split("\n\n") == [
        TRAINED,
        "Rejected: f1 0.841 vs champion v1 0.803 (improvement -0.02, 95 % CI -0.05 .. +0.01) "
        "on 420 rows neither trained on.",
        "Why: the evaluation failed:\n"
        "- not significantly better than the champion: f1 0.82 vs the champion's 0.84.\n"
        "- beats a trivial model: f1 0.82 vs a trivial model's 0.5.",
    ]
    backfill = (
        "its data ends at 2011-02-01T00:00:00+00:00, before the champion's (2011-03-01T00:00:00+00:00): a backfill"
    )
    kept = describe(COMPARED, promoted=False, passed=True, reason=backfill, checks=["passes"])
    assert kept.split("\n\n") == [TRAINED, f"Kept as challenger: {EVIDENCE}", f"Why: {backfill}."]
    forced = describe(COMPARED, promoted=True, passed=False, forced=True, reason="forced", checks=checks[:1])
    assert forced.split("\n\n")[1:] == [
        f"Promoted to champion (forced): {EVIDENCE}",
        f"Why: forced by the run, whatever the checks said:\n- {checks[0]}.",
    ]
    assert describe(COMPARED, promoted=False, passed=False, reason="gates failed: x").endswith(
        "\n\nWhy: gates failed: x."
    )


def test_a_first_champion_and_a_comparison_that_could_not_be_made() -> None:
    first = {
        tracking.TAG_WINDOW_END: "2011-04-01T00:00:00+00:00",
        tracking.TAG_SCORE_METRIC: "rmse",
        tracking.TAG_SCORE: "35.5912",
        tracking.TAG_SCORED_ON: "all 413 test rows",
        tracking.TAG_SCORED_ROWS: "413",
    }
    text = version_description(first, promoted=True, passed=True, reason="gates passed")
    assert text == (
        "Model trained on data up to 2011-04-01.\n\n"
        "Promoted to champion: rmse 35.6 on 413 test rows; there was no champion to compare with."
    )
    uncompared = {**first, tracking.TAG_COMPARED_WITH: "3", tracking.TAG_SCORED_ROWS: "12"}
    text = version_description(uncompared, promoted=False, passed=False, reason="gates failed: only 12 rows")
    assert "Rejected: rmse 35.6 on its test rows, not compared with champion v3 (12 rows neither trained on)." in text


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("sklearn.ensemble.HistGradientBoostingRegressor", "Hist gradient boosting regressor"),
        ("sklearn.neural_network.MLPClassifier", "MLP classifier"),
        ("sklearn.svm.SVC", "SVC"),
        ("sklearn.linear_model.LogisticRegression", "Logistic regression"),
        (None, "Model"),
    ],
)
def test_estimator_words(path, words) -> None:
    assert estimator_words(path) == words


def test_readable_times_and_windows() -> None:
    assert readable_time("2011-05-15T00:00:00+00:00") == "2011-05-15"
    assert readable_time("2011-05-15T02:00:00+02:00") == "2011-05-15"  # midnight UTC
    assert readable_time("2026-01-02T10:11:12.5+00:00") == "2026-01-02 10:11 UTC"
    assert readable_time("") == "" and readable_time("not a time") == "not a time"
    assert readable_window("2011-01-01T00:00:00+00:00", "2011-04-01T00:00:00+00:00") == "2011-01-01 .. 2011-04-01"
    assert readable_window("", "2011-04-01T00:00:00+00:00") == "data up to 2011-04-01"
    assert readable_window(None, None) == "all the data"


def test_a_rollback_note_is_added_once() -> None:
    move = Move("rollback", "m", "2", "1", "v2 over-predicts on rainy days", "alice", "2026-05-01T14:03:07+00:00")
    left = rollback_note("Promoted.", move, restored=False)
    note = "Rolled back from champion on 2026-05-01 14:03 UTC by alice, to v1: v2 over-predicts on rainy days."
    assert left == f"Promoted.\n\n{note}"
    assert rollback_note(left, move, restored=False) == left
    restored = rollback_note(None, move, restored=True)
    assert (
        restored
        == "Restored as champion on 2026-05-01 14:03 UTC by alice, replacing v2: v2 over-predicts on rainy days."
    )


def test_the_prediction_run_is_named_after_its_window() -> None:
    from airflow_mlc.core.serve import prediction_run_name as name

    assert name({"start": "2011-04-01T00:00:00+00:00", "end": "2011-04-08T00:00:00+00:00"}) == (
        "predict 2011-04-01 .. 2011-04-08"
    )
    assert name({"start": None, "end": "2011-04-08T06:00:00+00:00"}) == "predict up to 2011-04-08 06:00 UTC"


# --- against a real MLflow store -------------------------------------------------------------------------


@pytest.fixture
def target(tmp_path: Path) -> tracking.MlflowTarget:
    return tracking.embedded_target(tmp_path)


def candidate(target: tracking.MlflowTarget, window_end: str, rows: int = 4):
    """A logged tiny model run with its estimator and training rows; returns (run_id, model_uri, version tags)."""
    import mlflow
    import pandas as pd
    from mlflow.data.pandas_dataset import from_pandas
    from sklearn.dummy import DummyRegressor

    client = target.activate()
    experiment_id = tracking.ensure_experiment(client, "readable", target.artifact_location)
    train = pd.DataFrame({"x": [float(i) for i in range(rows)], "y": [float(i % 2) for i in range(rows)]})
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_param("estimator", "sklearn.dummy.DummyRegressor")
        mlflow.log_input(from_pandas(train, source="train.parquet", targets="y", name="m-training"), context="training")
        info = mlflow.sklearn.log_model(
            DummyRegressor().fit(train[["x"]], train["y"]),
            name="model",
            serialization_format="cloudpickle",
            pip_requirements=mlflow.sklearn.get_default_pip_requirements(),
        )
    tags = {
        tracking.TAG_WINDOW_START: "2011-01-01T00:00:00+00:00",
        tracking.TAG_WINDOW_END: window_end,
        tracking.TAG_SCORE_METRIC: "rmse",
        tracking.TAG_SCORE: "0.5",
        tracking.TAG_SCORED_ON: f"all {rows} test rows",
        tracking.TAG_SCORED_ROWS: str(rows),
    }
    return run.info.run_id, info.model_uri, tags


def move_log(client, run_id: str, task_id: str = "register") -> MoveLog:
    experiment_id = tracking.ensure_experiment(client, "readable/champion-moves", None)
    key = {tracking.TAG_DAG_ID: "mlc_m_train", tracking.TAG_RUN_ID: run_id, tracking.TAG_TASK_ID: task_id}
    return MoveLog(experiment_id, key, moved_by="alice")


def promote(client, made: tuple, evaluated_against: str | None, run_key: str):
    run_id, uri, tags = made
    return register_and_promote(
        client, "m", uri, run_id, True, ["ok"], tags, evaluated_against=evaluated_against, log=move_log(client, run_key)
    )


def test_versions_are_described_and_a_rollback_keeps_their_decision_tags(target) -> None:
    client = target.activate()
    promote(client, candidate(target, "2011-04-01T00:00:00+00:00", rows=4), None, "run_1")
    promote(client, candidate(target, "2011-05-01T00:00:00+00:00", rows=6), "1", "run_2")
    second = client.get_model_version("m", "2")
    assert second.description == (
        "Dummy regressor trained on 2011-01-01 .. 2011-05-01 (6 rows).\n\n"
        "Promoted to champion: rmse 0.5 on 6 test rows; there was no champion to compare with."
    )
    before = {v: dict(client.get_model_version("m", v).tags) for v in ("1", "2")}

    log = move_log(client, "manual_rollback", task_id="rollback")
    move = rollback(client, "m", None, "v2 scores badly on live data", log)
    assert str(version_by_alias(client, "m", CHAMPION).version) == "1"

    when = readable_time(move.moved_at)
    left, restored = client.get_model_version("m", "2"), client.get_model_version("m", "1")
    assert {v: dict(client.get_model_version("m", v).tags) for v in ("1", "2")} == before  # decisions kept
    assert restored.tags[tracking.TAG_DECISION] == "gates passed: ok"
    assert left.description.endswith(
        f"\n\nRolled back from champion on {when} by alice, to v1: v2 scores badly on live data."
    )
    assert restored.description.startswith("Dummy regressor trained on 2011-01-01 .. 2011-04-01 (4 rows).")
    assert restored.description.endswith(
        f"\n\nRestored as champion on {when} by alice, replacing v2: v2 scores badly on live data."
    )
    assert rollback(client, "m", None, "v2 scores badly on live data", log) == move  # a retry notes nothing twice
    assert client.get_model_version("m", "2").description == left.description


def test_runs_are_named_and_a_found_run_keeps_its_name(target) -> None:
    client = target.activate()
    promote(client, candidate(target, "2011-04-01T00:00:00+00:00"), None, "run_1")
    promote(client, candidate(target, "2011-05-01T00:00:00+00:00"), "1", "run_2")
    rollback(client, "m", None, "back", move_log(client, "manual", task_id="rollback"))
    moves = client.search_runs([client.get_experiment_by_name("readable/champion-moves").experiment_id])
    assert sorted(run.info.run_name for run in moves) == ["promote v1", "promote v2", "rollback v2 -> v1"]

    experiment_id = tracking.ensure_experiment(client, "readable/monitoring", None)
    key = {tracking.TAG_KIND: tracking.KIND_MONITORING, tracking.TAG_RUN_ID: "r1"}
    run_id = tracking.get_or_create_run(client, experiment_id, key, {}, run_name="monitor 2011-05-15")
    again = tracking.get_or_create_run(client, experiment_id, key, {"x": "1"}, run_name="another name")
    assert again == run_id and client.get_run(run_id).info.run_name == "monitor 2011-05-15"


# --- every tag is documented ----------------------------------------------------------------------------


def tag_constants() -> dict[str, str]:
    """The ``TAG_*`` constants of ``core/tracking.py`` (but the prefix), by name."""
    tree = ast.parse((ROOT / "airflow_mlc" / "core" / "tracking.py").read_text())
    return {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id.startswith("TAG_")
        and node.targets[0].id != "TAG_PREFIX"
        and isinstance(node.value, ast.Constant)
    }


def documented_tags() -> dict[str, list[str]]:
    """The rows of the table under "Every `mlc.*` tag" in docs/registry.md: tag, then its other cells."""
    text = (ROOT / "docs" / "registry.md").read_text()
    section = text.split("## Every `mlc.*` tag", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else []
        found = re.fullmatch(r"`(mlc\.[a-z_]+)`", cells[0]) if cells else None
        if found:
            rows[found.group(1)] = cells[1:]
    return rows


def test_every_tag_constant_is_documented_in_the_registry_docs() -> None:
    constants, documented = tag_constants(), documented_tags()
    assert len(constants) > 40
    missing = {name: tag for name, tag in constants.items() if tag not in documented}
    assert not missing, f"add these tags to the table of docs/registry.md: {missing}"
    assert not set(documented) - set(constants.values()), "docs/registry.md documents tags the code does not have"
    incomplete = [tag for tag, cells in documented.items() if len(cells) != 3 or not all(cells)]
    assert not incomplete, f"give each tag where it is, its meaning and an example: {incomplete}"
