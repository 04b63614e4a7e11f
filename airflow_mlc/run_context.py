"""What operators and sensors read from a run's context and templated arguments, in one neutral place.

Nothing here imports an operator or a sensor: both import it. The run's data window
(:func:`run_window`), the retraining request that triggered it (:func:`retrain_request`), templated
values as they render (:func:`flag`, :func:`rendered`), and the spec file named in a bad-input error
(:func:`naming_the_spec`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_mlc.errors import BadInputError

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlc.core.window import Window
    from airflow_mlc.spec import ModelLifecycleSpec


def rendered(value: Any) -> str | None:
    """A templated value as text, or None when unset: None, ``""``, or ``"None"`` (an empty value rendered)."""
    return None if value in (None, "", "None") else str(value)


def flag(value: bool | str) -> bool:
    """A templated boolean: rendered strings such as 'False' count as false."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def retrain_request(context: Context, asset_uri: str) -> dict[str, Any] | None:
    """The newest event of the retraining asset ``asset_uri`` that triggered this run, or None.

    Returns the event's extra (window, report URI, drifted share and columns ...) plus where it came
    from: ``asset``, ``source_dag_id``, ``source_run_id`` and ``timestamp``.
    """
    triggering = context.get("triggering_asset_events") or {}
    events = [event for asset in triggering if asset.uri == asset_uri for event in triggering[asset]]
    if not events:
        return None
    event = max(events, key=lambda e: e.timestamp)
    return {
        **event.extra,
        "asset": asset_uri,
        "source_dag_id": event.source_dag_id,
        "source_run_id": event.source_run_id,
        "timestamp": event.timestamp.isoformat(),
    }


def default_window_end(context: Context) -> datetime | None:
    """The end of the run's data interval; a manual run without one ends at its ``run_after``."""
    end = context.get("data_interval_end")
    if end is None:
        end = getattr(context.get("dag_run"), "run_after", None)
    return end


def run_window(
    context: Context,
    spec: ModelLifecycleSpec,
    window_start: str | None,
    window_end: str | None,
    lookback_days: int | None = None,
    prefer_data_interval: bool = False,
) -> Window:
    """The data window of a run, shared by ingest, batch inference and the data sensor (see ``IngestOperator``)."""
    from airflow_mlc.core.window import parse_moment, resolve_window

    end = window_end
    request = retrain_request(context, spec.retrain_asset_uri)
    if not end and request:
        end = (request.get("window") or {}).get("end")
    default_end = default_window_end(context)
    start = window_start
    interval_start = parse_moment(context.get("data_interval_start"))
    interval_end = parse_moment(default_end)
    if (
        not start
        and not end
        and prefer_data_interval
        and interval_start
        and interval_end
        and interval_start < interval_end
    ):
        start = interval_start.isoformat()
    return resolve_window(start, end, default_end, lookback_days or spec.window.lookback_days)


@contextmanager
def naming_the_spec(spec: ModelLifecycleSpec) -> Iterator[None]:
    """Add the spec file to a bad-input error (a malformed source, a wrong query ...): the file to fix."""
    try:
        yield
    except BadInputError as exc:
        if spec.origin == "<spec>" or spec.origin in str(exc):
            raise
        raise type(exc)(f"{exc} (model spec {spec.origin})") from exc
