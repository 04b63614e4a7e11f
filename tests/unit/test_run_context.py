"""The run context: the data window of a run, its retraining request, templated values as they render."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from airflow_mlc.errors import BadInputError
from airflow_mlc.run_context import flag, naming_the_spec, rendered, retrain_request, run_window
from airflow_mlc.spec import load_spec
from tests.conftest import BIKES_SPEC

pytestmark = pytest.mark.unit

APRIL = datetime(2011, 4, 1, tzinfo=UTC)
MAY = datetime(2011, 5, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def spec():
    return load_spec(BIKES_SPEC)


@dataclass(frozen=True)
class Asset:
    uri: str


def event(when: datetime, end: str) -> SimpleNamespace:
    return SimpleNamespace(
        extra={"window": {"end": end}}, source_dag_id="mlc_bikes_monitor", source_run_id=f"r-{end}", timestamp=when
    )


def test_templated_values_as_they_render() -> None:
    assert [rendered(v) for v in (None, "", "None", "3", 3)] == [None, None, None, "3", "3"]
    assert [flag(v) for v in ("True", "yes", "1", "False", "", "None", True, False)] == [
        True,
        True,
        True,
        False,
        False,
        False,
        True,
        False,
    ]


def test_a_scheduled_run_reads_its_data_interval_or_the_spec_s_lookback(spec) -> None:
    scheduled = {"data_interval_start": APRIL, "data_interval_end": MAY}
    window = run_window(scheduled, spec, None, None)
    assert window.end == MAY and (window.end - window.start).days == spec.window.lookback_days
    assert run_window(scheduled, spec, None, None, prefer_data_interval=True).start == APRIL
    assert run_window(scheduled, spec, "2011-03-01", None).start == datetime(2011, 3, 1, tzinfo=UTC)
    assert run_window(scheduled, spec, None, None, lookback_days=2).start == datetime(2011, 4, 29, tzinfo=UTC)


def test_a_manual_run_ends_at_its_run_after_and_a_retraining_request_names_its_window(spec) -> None:
    manual = {"dag_run": SimpleNamespace(run_after=MAY)}
    assert run_window(manual, spec, None, None).end == MAY

    asset = Asset(spec.retrain_asset_uri)
    older, newer = event(APRIL, "2011-04-15"), event(MAY, "2011-05-15")
    triggered = {**manual, "triggering_asset_events": {asset: [older, newer]}}
    request = retrain_request(triggered, spec.retrain_asset_uri)
    assert request is not None and request["source_run_id"] == "r-2011-05-15" and request["asset"] == asset.uri
    assert run_window(triggered, spec, None, None).end == datetime(2011, 5, 15, tzinfo=UTC)
    assert run_window(triggered, spec, None, "2011-05-02").end == datetime(2011, 5, 2, tzinfo=UTC)  # given wins
    assert retrain_request(triggered, "mlc://another") is None


def test_a_window_field_that_is_no_time_is_bad_input_naming_the_field(spec) -> None:
    with pytest.raises(BadInputError, match="window_end"):
        run_window({}, spec, None, "2011-04-08'; DROP TABLE bikes; --")


def test_a_bad_input_error_names_the_spec_file_once(spec) -> None:
    with pytest.raises(BadInputError) as error, naming_the_spec(spec):
        raise BadInputError("query 'select' failed")
    assert str(error.value) == f"query 'select' failed (model spec {spec.origin})"
    with pytest.raises(BadInputError) as again, naming_the_spec(spec):
        raise BadInputError(f"{spec.origin}: bad")
    assert str(again.value) == f"{spec.origin}: bad"
