"""The Models page's data: versions, decisions, triggers, monitoring series, retraining outcomes, charts."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_mlc.core import history, tracking
from airflow_mlc.core.registry import Move
from airflow_mlc.spec import DAG_KINDS, load_spec
from airflow_mlc.ui import charts
from tests.conftest import BIKES_SPEC

pytestmark = pytest.mark.unit

TRAIN, MONITOR, PREDICT, ROLLBACK = (f"mlc_bikes_{kind}" for kind in DAG_KINDS)


def version(number: int, run_id: str, **tags: str) -> SimpleNamespace:
    base = {tracking.TAG_RUN_ID: run_id, tracking.TAG_DAG_ID: TRAIN, tracking.TAG_SCORE_METRIC: "rmse"}
    return SimpleNamespace(
        version=str(number),
        run_id=f"mlflow-{number}",
        tags={**base, **tags},
        creation_timestamp=1_300_000_000_000 + number,
        description="",
    )


def drift_result(end: str, scores: dict[str, float], threshold: float = 0.1, detected: bool = False) -> dict[str, Any]:
    return {
        "drift_detected": detected,
        "drifted_share": sum(s > threshold for s in scores.values()) / len(scores),
        "drift_share_threshold": 0.5,
        "window": {"start": "2011-01-01", "end": end},
        "champion_version": "1",
        "columns": [
            {"column": c, "method": "wasserstein", "threshold": threshold, "score": s, "drifted": s > threshold}
            for c, s in scores.items()
        ],
    }


def quality_result(value: float | None, rows: int) -> dict[str, Any]:
    return {
        "metric": "rmse",
        "labelled_rows": rows,
        "live_metrics": {"rmse": value} if value is not None else {},
        "baseline": 50.0,
        "tolerance": 0.2,
        "degraded": bool(value and value > 60),
        "interval": [value - 5, value + 5] if value is not None else None,
        "champion_version": "1",
    }


def monitor_run(run_id: str, end: str, scores: dict[str, float], decision: dict[str, Any] | None, **kw: Any):
    xcoms = {"drift": drift_result(end, scores, detected=max(scores.values()) > 0.1)}
    xcoms["quality"] = kw.pop("quality", quality_result(55.0, 100))
    if decision is not None:
        xcoms["request_retraining.decision"] = decision
        if decision["requested"]:
            xcoms["request_retraining"] = {"reason": decision["reason"]}
    return history.RunRecord(MONITOR, run_id, "scheduled", kw.pop("state", "success"), xcoms=xcoms, **kw)


@pytest.fixture(scope="module")
def spec():
    return load_spec(BIKES_SPEC)


@pytest.mark.parametrize(
    ("passed", "promoted", "decision"),
    [(True, True, "promoted"), (True, False, "challenger"), (False, False, "rejected")],
)
def test_a_training_runs_decision_matches_its_versions_tags(passed: bool, promoted: bool, decision: str) -> None:
    run = history.RunRecord(
        TRAIN,
        "t1",
        "manual",
        "success",
        xcoms={"evaluate": {"passed": passed}, "register": {"version": 3, "promoted": promoted, "reason": "why"}},
    )
    tags = {tracking.TAG_GATE_PASSED: str(passed).lower(), tracking.TAG_PROMOTED: str(promoted).lower()}
    assert history.decision_of_run(run) == ("3", decision, "why")
    assert history.decision_of(tags) == decision


def test_decisions_and_triggers_of_versions() -> None:
    request = {"reason": "drift in temp", "source_run_id": "monitor-2", "window": {"end": "2011-05-15"}}
    versions = [
        version(1, "train-1", **{tracking.TAG_PROMOTED: "true", tracking.TAG_GATE_PASSED: "true"}),
        version(2, "train-2", **{tracking.TAG_GATE_PASSED: "false", tracking.TAG_TRIGGERED_BY: json.dumps(request)}),
        version(3, "train-3", **{tracking.TAG_GATE_PASSED: "true", tracking.TAG_PROMOTED: "false"}),
        version(4, "train-4"),
    ]
    runs = {
        "train-1": history.RunRecord(TRAIN, "train-1", "manual", "success", user="alice"),
        "train-3": history.RunRecord(TRAIN, "train-3", "backfill", "success"),
    }
    rows = history.version_rows(versions, {"champion": "1", "challenger": "3"}, runs)

    assert [row.version for row in rows] == ["4", "3", "2", "1"]
    by_version = {row.version: row for row in rows}
    assert [by_version[v].decision for v in "1234"] == ["promoted", "rejected", "challenger", "pending"]
    assert (by_version["1"].trigger, by_version["1"].trigger_detail) == ("manual", "by alice")
    assert by_version["2"].trigger == "drift" and "monitor-2" in by_version["2"].trigger_detail
    assert "2011-05-15" in by_version["2"].trigger_detail
    assert by_version["3"].trigger == "backfill"
    assert by_version["1"].aliases == ["champion"] and by_version["3"].aliases == ["challenger"]


def test_version_numbers_and_intervals_read_from_tags() -> None:
    tags = {
        tracking.TAG_SCORE: "41.5",
        tracking.TAG_CHAMPION_SCORE: "45.0",
        tracking.TAG_CI_LOW: "1.2",
        tracking.TAG_CI_HIGH: "5.9",
        tracking.TAG_IMPROVEMENT: "nan",
        tracking.TAG_COMPARED_WITH: "1",
    }
    (row,) = history.version_rows([version(2, "train-2", **tags)], {}, {})
    assert (row.score, row.champion_score, row.ci_low, row.ci_high) == (41.5, 45.0, 1.2, 5.9)
    assert row.improvement is None  # a non-finite tag is no number
    assert row.compared_with == "1"


def test_governance_of_a_version_and_the_shadow_of_a_batch_reach_the_page() -> None:
    from airflow_mlc.core.evaluate import governance_tags

    governance = {
        "explanations": {"details": {"ranking": [{"feature": f, "mean": 1.0, "std": 0.0} for f in "abcd"]}},
        "fairness": {"blocked": True, "reasons": ["fairness: error_rate differs by 0.3 between group='B' ..."]},
        "slices": {
            "blocked": False,
            "reasons": [],
            "details": {"metric": "rmse", "columns": {"season": {"1": {"rows": 40, "candidate": 9.0}}}},
        },
    }
    tags = {**governance_tags(governance), tracking.TAG_MODEL_CARD: "runs:/r/model_card/model_card.md"}
    (row,) = history.version_rows([version(3, "train-3", **tags)], {}, {})
    assert row.top_features == "a, b, c" and row.model_card == "runs:/r/model_card/model_card.md"
    assert row.fairness == "blocked: fairness: error_rate differs by 0.3 between group='B' ..."
    assert row.slices == "worst slices: season='1': rmse 9 (40 rows)"
    assert governance_tags({}) == {}
    assert history.version_rows([version(4, "t", **{tracking.TAG_ROLLOUT_STEP: "1"})], {}, {})[0].rollout == (
        "rollout active, step 2"
    )
    stopped = {tracking.TAG_ROLLOUT_STATE: "rolled_back", tracking.TAG_ROLLOUT_REASON: "worse on live data"}
    assert history.version_rows([version(5, "t", **stopped)], {}, {})[0].rollout == (
        "rollout rolled back: worse on live data"
    )

    shadow = {"version": "4", "uri": "/s.parquet", "rows": 10, "agreement": 0.9}
    result = {
        "window": {"start": "a", "end": "b"},
        "rows": 10,
        "stats": {"rows": 10, "class_counts": {}},
        "shadow": shadow,
    }
    run = history.RunRecord(PREDICT, "p1", "scheduled", "success", xcoms={"predict": result})
    (batch,) = history.prediction_batches([run])
    assert batch.shadow == shadow and "shadow" not in batch.distribution


def test_monitoring_windows_are_ordered_by_window_and_series_follow_them() -> None:
    runs = [
        monitor_run("m-b", "2011-05-15", {"temp": 0.4, "hum": 0.05}, {"requested": True, "reason": "drift"}),
        monitor_run("m-a", "2011-04-01", {"temp": 0.02, "hum": 0.03}, {"requested": False, "reason": "no signal"}),
        history.RunRecord(MONITOR, "m-skipped", "scheduled", "failed"),  # failed before any result: no window
    ]
    windows = history.monitoring_windows(runs)
    assert [w.window_end for w in windows] == ["2011-04-01", "2011-05-15"]
    assert [w.drift_detected for w in windows] == [False, True]
    assert windows[1].drifted_share == 0.5 and windows[1].quality_value == 55.0

    series = {s.column: s for s in history.drift_series(runs, windows)}
    assert [p["score"] for p in series["temp"].points] == [0.02, 0.4]
    assert [p["drifted"] for p in series["temp"].points] == [False, True]
    assert series["hum"].threshold == 0.1


def test_retraining_requests_and_what_became_of_them() -> None:
    runs = [
        monitor_run("m1", "2011-04-01", {"temp": 0.02}, {"requested": False, "reason": "no signal: nothing drifted"}),
        monitor_run("m2", "2011-05-15", {"temp": 0.4}, {"requested": True, "reason": "drift in temp"}),
        monitor_run("m3", "2011-05-20", {"temp": 0.5}, {"requested": False, "reason": "within the cooldown of 7 days"}),
        monitor_run("m4", "2011-06-15", {"temp": 0.6}, {"requested": True, "reason": "drift in temp"}),
        monitor_run("m5", "2011-07-15", {"temp": 0.6}, {"requested": True, "reason": "drift in temp"}),
        monitor_run("m6", "2011-08-15", {"temp": 0.6}, {"requested": True, "reason": "drift in temp"}),
    ]
    rejected = {
        "evaluate": {"passed": False},
        "register": {"version": "2", "promoted": False, "reason": "not better"},
    }
    training = [
        history.RunRecord(TRAIN, "t2", "asset_triggered", "success", xcoms=rejected, source_run_id="m2"),
        history.RunRecord(TRAIN, "t4", "asset_triggered", "failed", source_run_id="m4"),
        history.RunRecord(TRAIN, "t5", "asset_triggered", "running", source_run_id="m5"),
    ]
    requests = history.retrain_requests(history.monitoring_windows(runs), training)

    outcomes = {r.monitoring_run_id: (r.outcome, r.version) for r in requests}
    assert outcomes == {
        "m2": ("rejected", "2"),
        "m3": ("suppressed", None),
        "m4": ("failed", None),
        "m5": ("pending", None),
        "m6": ("pending", None),
    }
    assert [r.monitoring_run_id for r in requests] == ["m6", "m5", "m4", "m3", "m2"]  # newest first
    assert next(r for r in requests if r.monitoring_run_id == "m2").detail == "not better"


def test_model_page_puts_runs_in_their_places(spec) -> None:
    moves = [
        Move("promotion", "bikes", None, "1", "first", "airflow", "2011-04-02T00:00:00"),
        Move("rollback", "bikes", "2", "1", "bad week", "alice", "2011-05-20T00:00:00"),
    ]
    runs = [
        monitor_run("m1", "2011-04-01", {"temp": 0.02}, {"requested": False, "reason": "no signal"}),
        history.RunRecord(
            PREDICT,
            "p1",
            "manual",
            "success",
            xcoms={
                "predict": {
                    "rows": 168,
                    "model_version": "1",
                    "window": {"start": "2011-05-15", "end": "2011-05-22"},
                    "stats": {"rows": 168, "seconds": 0.2, "mean": 120.0},
                }
            },
        ),
        history.RunRecord(
            ROLLBACK, "r1", "manual", "success", user="alice", conf={"target_version": "1", "reason": "bad"}
        ),
        history.RunRecord("mlc_other_train", "x", "manual", "success"),
    ]
    page = history.model_page(
        spec, [version(1, "t1", **{tracking.TAG_PROMOTED: "true"})], {"champion": "1"}, moves, runs, {TRAIN: False}
    )
    assert [m["kind"] for m in page.moves] == ["rollback", "promotion"]  # newest first
    assert page.summary.champion == "1" and page.summary.last_monitoring["window_end"] == "2011-04-01"
    assert [(b.rows, b.model_version, b.distribution) for b in page.predictions] == [(168, "1", {"mean": 120.0})]
    assert page.rollbacks == [
        {"run_id": "r1", "state": "success", "user": "alice", "version": "1", "reason": "bad", "started": None}
    ]
    json.dumps(page.as_dict())  # the JSON route serialises it as is


def count(markup: str, pattern: str) -> int:
    return len(re.findall(pattern, markup))


def test_drift_chart_has_a_point_per_window_and_column_and_its_thresholds() -> None:
    runs = [
        monitor_run(f"m{i}", f"2011-0{i}-01", {"temp": 0.05 * i, "hum": 0.01, "odd col <b>": 0.2}, None)
        for i in range(1, 6)
    ]
    windows = history.monitoring_windows(runs)
    svg = charts.drift_chart([w.window_end for w in windows], history.drift_series(runs, windows))

    assert 'data-windows="5"' in svg and 'data-series="3"' in svg
    assert count(svg, r'<circle class="point') == 15
    assert count(svg, r'class="point flagged"') == 3 + 5  # temp above 0.1 from the 3rd window; the odd column always
    assert count(svg, r'<line class="threshold"') == 3
    assert "odd col &lt;b&gt;" in svg and "<b>" not in svg  # column names are escaped


def test_quality_chart_skips_windows_without_labels_and_draws_baseline_and_tolerance() -> None:
    runs = [
        monitor_run("m1", "2011-04-01", {"temp": 0.0}, None, quality=quality_result(52.0, 80)),
        monitor_run("m2", "2011-05-01", {"temp": 0.0}, None, quality=quality_result(None, 0)),
        monitor_run("m3", "2011-06-01", {"temp": 0.0}, None, quality=quality_result(70.0, 90)),
    ]
    svg = charts.quality_chart(history.monitoring_windows(runs))

    assert 'data-windows="3"' in svg
    assert count(svg, r'<circle class="point') == 2
    assert count(svg, r'class="point flagged"') == 1
    assert "evaluation baseline 50" in svg
    assert "tolerance: 60" in svg  # rmse: a lower-is-better metric, 20 % above the baseline


def test_distribution_of_a_classification_and_a_regression_batch() -> None:
    shares = charts.distribution_bars({"class_shares": {"yes": 0.25, "no": 0.75}})
    assert count(shares, "<rect") == 2 and "yes: 25.0%" in shares
    box = charts.distribution_bars({"min": 0, "p05": 1, "p50": 5, "p95": 9, "max": 10})
    assert 'class="box"' in box and 'class="median"' in box
    assert charts.distribution_bars({}) == ""


def test_a_long_history_draws_its_line_through_every_window_and_points_only_where_they_matter() -> None:
    count_windows = charts.MAX_POINTS + 50
    scores = [0.2 if i % 40 == 0 else 0.01 for i in range(count_windows)]
    series = [history.ColumnSeries("temp", "wasserstein", 0.1, [])]
    ends = [f"w{i:04d}" for i in range(count_windows)]
    for end, score in zip(ends, scores, strict=True):
        series[0].points.append(
            {"window_end": end, "score": score, "drifted": score > 0.1, "threshold": 0.1, "method": "wasserstein"}
        )
    svg = charts.drift_chart(ends, series)
    polyline = re.search(r'<polyline class="trace" points="([^"]+)"', svg).group(1)
    assert len(polyline.split()) == count_windows
    assert count(svg, r'<circle class="point') == sum(s > 0.1 for s in scores) + 1  # the drifted and the newest
