"""Model cards: every section, in Markdown and in HTML, with every value escaped."""

from __future__ import annotations

import pytest

from airflow_mlc.core.model_card import SECTIONS, card_sections, to_html, to_markdown
from airflow_mlc.spec import load_spec
from tests.conftest import BIKES_SPEC

pytestmark = pytest.mark.unit

TAGS = {
    "mlc.window_start": "2011-01-01T00:00:00+00:00",
    "mlc.window_end": "2011-04-01T00:00:00+00:00",
    "mlc.data_fingerprint": "3f2a",
    "mlc.train_data_uri": "/artifacts/bikes/train.parquet",
    "mlc.test_data_uri": "/artifacts/bikes/test.parquet",
    "mlc.triggered_by": '{"source_dag_id": "mlc_bikes_monitor", "source_run_id": "scheduled__2011-05-15"}',
    "mlc.dag_id": "mlc_bikes_train",
    "mlc.run_id": "asset_triggered__1",
}
COMPARISON = {
    "challenger": 35.6,
    "champion": 41.2,
    "improvement": 5.6,
    "low": 2.1,
    "high": 9.0,
    "confidence": 0.95,
    "rows": 413,
}
EVALUATION = {
    "metric": "rmse",
    "metrics": {"rmse": 35.6, "mae": 23.2},
    "reasons": ["significantly better than the champion: rmse <35.6> & more"],
    "comparison": COMPARISON,
    "baseline": {**COMPARISON, "champion": 88.7},
    "scored_on": "the 413 test rows newer than the champion's data",
    "governance": {
        "fairness": {
            "blocked": True,
            "reasons": ["fairness: mae differs by 9.1 between season='<b>summer</b>' (30) and season='winter' (21)"],
            "details": {
                "metric": "mae",
                "max_gap": 5,
                "columns": {
                    "season": {"groups": {"<b>summer</b>": {"value": 30.0, "rows": 200}}, "judged": ["<b>summer</b>"]}
                },
            },
        },
        "explanations": {
            "blocked": False,
            "reasons": [],
            "details": {
                "metric": "rmse",
                "rows": 413,
                "repeats": 5,
                "ranking": [{"feature": "hr", "mean": 80.1, "std": 2.0}],
            },
        },
    },
}
DECISION = {"promoted": True, "reason": "gates passed: significantly better", "previous_champion": "1"}
RUN = {"run_id": "abc", "experiment_id": "7", "params": {"estimator": "sklearn.ensemble.HistGradientBoostingRegressor"}}


def test_every_card_has_every_section_in_order_and_says_what_was_not_checked() -> None:
    spec = load_spec(BIKES_SPEC)
    sections = card_sections(spec, "2", TAGS, EVALUATION, DECISION, RUN)
    markdown = to_markdown("Model card: bikes version 2", sections)

    assert [line[3:] for line in markdown.splitlines() if line.startswith("## ")] == list(SECTIONS)
    assert "Not measured: the spec sets no gates.slices." in markdown
    assert "Training triggered by: source_dag_id mlc_bikes_monitor, source_run_id scheduled__2011-05-15." in markdown
    assert "| the champion | 35.6 | 41.2 | 5.6 | [2.1, 9] at 0.95 | 413 |" in markdown
    assert "| 1 | hr | 80.1 | 2 |" in markdown and "**Blocked.** fairness: mae differs by 9.1" in markdown
    assert "| registered version | bikes v2 |" in markdown and "| fingerprint | 3f2a |" in markdown
    assert "<b>" not in markdown and "| season | &lt;b&gt;summer&lt;/b&gt; | 30 | 200 | yes |" in markdown


def test_the_html_card_escapes_every_value_and_loads_nothing() -> None:
    spec = load_spec(BIKES_SPEC)
    page = to_html("Model card: bikes version 2", card_sections(spec, "2", TAGS, EVALUATION, DECISION, RUN))

    assert "<b>summer</b>" not in page and "&lt;b&gt;summer&lt;/b&gt;" in page
    assert "rmse &lt;35.6&gt; &amp; more" in page and "<strong>Promoted to champion</strong>" in page
    assert "<script" not in page and "http" not in page
    assert [page.count(f"<h2>{title}</h2>") for title in SECTIONS] == [1] * len(SECTIONS)
