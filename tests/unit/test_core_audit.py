"""The decision history's export: JSON and CSV that read back as the same events, whatever the text holds."""

from __future__ import annotations

import pytest

from airflow_mlc.core.audit import DecisionEvent, read_history, write_history
from airflow_mlc.errors import BadInputError

pytestmark = pytest.mark.unit

EVENTS = [
    DecisionEvent(
        at="2026-11-30T10:00:00+00:00",
        kind="decision",
        model="churn",
        version="3",
        outcome="rejected",
        reason='not significantly better than the champion: f1 0.81 vs 0.80, "95%" interval [-0.01, +0.03]\nand more',
        by="drift: mlc_churn_monitor, run scheduled__2026-11-29",
        dag_id="mlc_churn_train",
        run_id="asset_triggered__2026-11-30T10:00:00+00:00",
        details={"mlc.score_metric": "f1", "mlc.improvement_ci_low": "-0.01", "mlc.scored_on": "Ünïcode, rows; 413"},
    ),
    DecisionEvent("2026-11-30T11:00:00+00:00", "rollback", "churn", "2", "champion v3 -> v2", "bad, week", "alice"),
]


@pytest.mark.parametrize("file_format", ["json", "csv"])
def test_an_export_reads_back_as_the_same_events(file_format: str) -> None:
    text = write_history(EVENTS, file_format)
    assert read_history(text, file_format) == EVENTS


def test_the_csv_has_one_row_per_event_and_a_header_a_spreadsheet_reads() -> None:
    import csv
    import io

    rows = list(csv.reader(io.StringIO(write_history(EVENTS, "csv"))))
    assert rows[0] == ["at", "kind", "model", "version", "outcome", "reason", "by", "dag_id", "run_id", "details"]
    assert len(rows) == 3 and rows[2][5] == "bad, week" and rows[2][9] == "{}"


def test_an_unknown_format_is_a_clear_error() -> None:
    with pytest.raises(BadInputError, match="export format 'xml': use one of json, csv"):
        write_history(EVENTS, "xml")
