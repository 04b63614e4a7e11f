"""The data window a run works on: ``start <= time < end``, in UTC."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from airflow_mlc.errors import BadInputError


@dataclass(frozen=True)
class Window:
    start: datetime | None
    end: datetime | None

    def __post_init__(self) -> None:
        if self.start and self.end and self.start >= self.end:
            raise BadInputError(f"the data window is empty: start {self.start} is not before end {self.end}")

    def __str__(self) -> str:
        return f"[{self.start or '-inf'}, {self.end or '+inf'})"

    def as_dict(self) -> dict[str, str | None]:
        return {"start": _iso(self.start), "end": _iso(self.end)}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def parse_moment(value: str | int | float | datetime | None, field: str = "time") -> datetime | None:
    """A datetime from an ISO 8601 string or a datetime; naive values are taken as UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):  # a date such as 20110401, turned into a number by native rendering
        value = str(int(value))
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise BadInputError(f"{field} {value!r} is not an ISO 8601 date or time") from None
    if type(value) is not datetime:  # a pendulum DateTime from Airflow's context: make it a plain datetime
        value = datetime.fromisoformat(value.isoformat())
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def resolve_window(
    start: str | int | datetime | None,
    end: str | int | datetime | None,
    default_end: datetime | None,
    lookback_days: int | None,
) -> Window:
    """The window from explicit bounds, else ``default_end`` and the spec's lookback."""
    end_moment = parse_moment(end, "window_end") or parse_moment(default_end)
    start_moment = parse_moment(start, "window_start")
    if start_moment is None and end_moment is not None and lookback_days:
        start_moment = end_moment - timedelta(days=lookback_days)
    return Window(start_moment, end_moment)
