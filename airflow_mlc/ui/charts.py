"""Charts of the Models page as inline SVG: no script, no asset from anywhere but the page itself.

Each chart is built from plain lists and returns markup. Points are ``circle.point`` elements (one per
window), reference lines are ``line`` elements with a class saying what they are (``threshold``,
``baseline``, ``tolerance``), and every point carries a ``<title>`` that the browser shows on hover.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from airflow_mlc.spec import LOWER_IS_BETTER

WIDTH = 760
LEFT = 64
RIGHT = 16
TOP = 22
PANEL = 96
GAP = 44
#: Up to this many windows a chart draws a point per window; beyond, only the flagged ones and the newest.
MAX_POINTS = 150


@dataclass(frozen=True)
class Scale:
    """Maps window indexes to x and values to y inside one panel."""

    count: int
    low: float
    high: float
    top: float
    height: float = PANEL

    def x(self, index: int) -> float:
        span = WIDTH - LEFT - RIGHT
        return LEFT + (span / 2 if self.count <= 1 else span * index / (self.count - 1))

    def y(self, value: float) -> float:
        if self.high <= self.low:
            return self.top + self.height / 2
        return self.top + self.height * (1 - (value - self.low) / (self.high - self.low))


def _bounds(values: Sequence[float | None], *extra: float | None) -> tuple[float, float]:
    numbers = [v for v in (*values, *extra) if v is not None]
    if not numbers:
        return 0.0, 1.0
    low, high = min(numbers), max(numbers)
    pad = (high - low) * 0.08 or abs(high) * 0.1 or 0.1
    return low - pad, high + pad


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _label(moment: str) -> str:
    """A window's end as a short label: the date, and the time when it is not midnight."""
    return moment[:16].replace("T", " ").removesuffix(" 00:00")


def _axis(scale: Scale, labels: Sequence[str], title: str) -> list[str]:
    """The panel's frame, its title, its value range and the first and last window's labels."""
    labels = [_label(label) for label in labels]
    bottom = scale.top + scale.height
    parts = [
        f'<text class="panel-title" x="{LEFT}" y="{scale.top - 7:.1f}">{escape(title)}</text>',
        f'<line class="axis" x1="{LEFT}" y1="{bottom:.1f}" x2="{WIDTH - RIGHT}" y2="{bottom:.1f}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{scale.top:.1f}" x2="{LEFT}" y2="{bottom:.1f}"/>',
        f'<text class="tick" x="{LEFT - 6}" y="{scale.top + 4:.1f}" text-anchor="end">{_fmt(scale.high)}</text>',
        f'<text class="tick" x="{LEFT - 6}" y="{bottom:.1f}" text-anchor="end">{_fmt(scale.low)}</text>',
    ]
    if labels:
        parts.append(f'<text class="tick" x="{scale.x(0):.1f}" y="{bottom + 14:.1f}">{escape(labels[0])}</text>')
        if len(labels) > 1:
            last = scale.x(len(labels) - 1)
            parts.append(
                f'<text class="tick" x="{last:.1f}" y="{bottom + 14:.1f}" text-anchor="end">{escape(labels[-1])}</text>'
            )
    return parts


def _hline(scale: Scale, value: float | None, css: str, label: str) -> str:
    if value is None:
        return ""
    y = scale.y(value)
    return (
        f'<line class="{css}" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}">'
        f"<title>{escape(label)}</title></line>"
    )


def _series(scale: Scale, values: Sequence[float | None], titles: Sequence[str], flagged: Sequence[bool]) -> list[str]:
    """A polyline through the defined values and a ``circle.point`` per defined value.

    Beyond ``MAX_POINTS`` windows the points would overlap: the line still passes through every window,
    and points mark the flagged windows and the newest one.
    """
    points = [(scale.x(i), scale.y(v)) for i, v in enumerate(values) if v is not None]
    parts = []
    if len(points) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline class="trace" points="{path}"/>')
    every = len(values) <= MAX_POINTS
    for index, value in enumerate(values):
        if value is None or not (every or flagged[index] or index == len(values) - 1):
            continue
        css = "point flagged" if flagged[index] else "point"
        parts.append(
            f'<circle class="{css}" cx="{scale.x(index):.1f}" cy="{scale.y(value):.1f}" r="3.5">'
            f"<title>{escape(titles[index])}</title></circle>"
        )
    return parts


def _svg(chart_id: str, height: float, windows: int, body: list[str], extra: str = "") -> str:
    return (
        f'<svg id="{chart_id}" class="chart" data-windows="{windows}"{extra} viewBox="0 0 {WIDTH} {height:.0f}" '
        f'width="100%" role="img" xmlns="http://www.w3.org/2000/svg">{"".join(body)}</svg>'
    )


def drift_chart(windows: Sequence[str], series: Sequence[Any]) -> str:
    """One panel per monitored column: its drift score per window, drifted windows flagged, its threshold.

    ``series`` are :class:`airflow_mlc.core.history.ColumnSeries`; a p-value method (lower means
    drift) and a distance (higher means drift) each read against their own threshold line.
    """
    index = {window: i for i, window in enumerate(windows)}
    body: list[str] = []
    for number, column in enumerate(series):
        values: list[float | None] = [None] * len(windows)
        titles = [""] * len(windows)
        flagged = [False] * len(windows)
        thresholds = []
        for point in column.points:
            i = index.get(point["window_end"])
            if i is None:
                continue
            values[i] = point["score"]
            flagged[i] = point["drifted"]
            verdict = "drifted" if point["drifted"] else "no drift"
            titles[i] = (
                f"{column.column}, window ending {point['window_end']}: {point['method']} {_fmt(point['score'])} "
                f"(threshold {_fmt(point['threshold'])}, {verdict})"
            )
            if point["threshold"] is not None:
                thresholds.append(point["threshold"])
        scale = Scale(len(windows), *_bounds(values, *thresholds), top=TOP + number * (PANEL + GAP))
        body.append(f'<g class="series" data-column="{escape(column.column)}">')
        body += _axis(scale, windows, f"{column.column} ({column.method})")
        for threshold in sorted(set(thresholds)):
            body.append(_hline(scale, threshold, "threshold", f"drift threshold {_fmt(threshold)}"))
        body += _series(scale, values, titles, flagged)
        body.append("</g>")
    height = TOP + max(len(series), 1) * (PANEL + GAP)
    return _svg("drift-chart", height, len(windows), body, f' data-series="{len(series)}"')


def share_chart(windows: Sequence[Any]) -> str:
    """The share of drifted columns per window against the drifted-share threshold."""
    labels = [w.window_end for w in windows]
    values = [w.drifted_share for w in windows]
    thresholds = sorted({w.drift_share_threshold for w in windows if w.drift_share_threshold is not None})
    scale = Scale(len(windows), 0.0, 1.0, top=TOP)
    titles = [f"window ending {w.window_end}: {_fmt(w.drifted_share)} of the columns drifted" for w in windows]
    body = _axis(scale, labels, "drifted share of the columns")
    body += [_hline(scale, t, "threshold", f"drifted-share threshold {_fmt(t)}") for t in thresholds]
    body += _series(scale, values, titles, [bool(w.drift_detected) for w in windows])
    return _svg("drifted-share-chart", TOP + PANEL + GAP, len(windows), body)


def quality_chart(windows: Sequence[Any]) -> str:
    """The champion's live gate metric per window with its interval, its evaluation baseline and the tolerance.

    The tolerance line is where the relative loss reaches ``quality_tolerance`` for the newest
    baseline (below it for a score, above it for an error metric, ``lower_is_better`` on the window).
    """
    labels = [w.window_end for w in windows]
    values = [w.quality_value if w.labelled_rows else None for w in windows]
    baselines = [w.quality_baseline for w in windows if w.quality_baseline is not None]
    baseline = baselines[-1] if baselines else None
    tolerance = next((w.quality_tolerance for w in reversed(windows) if w.quality_tolerance is not None), None)
    metric = next((w.quality_metric for w in windows if w.quality_metric), "metric")
    limit = None
    if baseline is not None and tolerance is not None:
        limit = baseline * (1 + tolerance) if metric in LOWER_IS_BETTER else baseline * (1 - tolerance)
    lows = [w.quality_interval[0] for w in windows if w.quality_interval]
    highs = [w.quality_interval[1] for w in windows if w.quality_interval]
    scale = Scale(len(windows), *_bounds(values, *lows, *highs, baseline, limit), top=TOP)
    titles = [
        f"window ending {w.window_end}: {metric} {_fmt(w.quality_value)} on {w.labelled_rows} labelled rows "
        f"(champion v{w.champion_version}, baseline {_fmt(w.quality_baseline)})"
        for w in windows
    ]
    body = _axis(scale, labels, f"champion's live {metric}")
    for i, window in enumerate(windows):
        if window.quality_interval and window.labelled_rows:
            x = scale.x(i)
            low, high = window.quality_interval
            body.append(
                f'<line class="interval" x1="{x:.1f}" y1="{scale.y(low):.1f}" x2="{x:.1f}" y2="{scale.y(high):.1f}"/>'
            )
    body.append(_hline(scale, baseline, "baseline", f"evaluation baseline {_fmt(baseline)}"))
    body.append(_hline(scale, limit, "tolerance", f"tolerance: {_fmt(limit)} ({_fmt(tolerance)} relative loss)"))
    body += _series(scale, values, titles, [bool(w.quality_degraded) for w in windows])
    return _svg("quality-chart", TOP + PANEL + GAP, len(windows), body)


def distribution_bars(distribution: dict[str, Any]) -> str:
    """A small picture of one batch's predictions: class shares as bars, or a regression's p05..p95 box."""
    shares = distribution.get("class_shares")
    if isinstance(shares, dict) and shares:
        width, parts, x = 160, [], 0.0
        for number, (label, share) in enumerate(sorted(shares.items(), key=lambda kv: str(kv[0]))):
            w = width * float(share)
            parts.append(
                f'<rect class="share c{number % 6}" x="{x:.1f}" y="2" width="{w:.1f}" height="12">'
                f"<title>{escape(str(label))}: {float(share):.1%}</title></rect>"
            )
            x += w
        return f'<svg class="distribution" viewBox="0 0 {width} 16" width="{width}" height="16">{"".join(parts)}</svg>'
    keys = ("min", "p05", "p50", "p95", "max")
    if all(isinstance(distribution.get(k), (int, float)) for k in keys):
        low, high = float(distribution["min"]), float(distribution["max"])
        span = (high - low) or 1.0

        def pos(value: float) -> float:
            return 4 + 152 * (float(value) - low) / span

        title = ", ".join(f"{k} {_fmt(float(distribution[k]))}" for k in keys)
        median = pos(distribution["p50"])
        return (
            f'<svg class="distribution" viewBox="0 0 160 16" width="160" height="16"><title>{escape(title)}</title>'
            f'<line class="whisker" x1="{pos(low):.1f}" y1="8" x2="{pos(high):.1f}" y2="8"/>'
            f'<rect class="box" x="{pos(distribution["p05"]):.1f}" y="3" '
            f'width="{pos(distribution["p95"]) - pos(distribution["p05"]):.1f}" height="10"/>'
            f'<line class="median" x1="{median:.1f}" y1="2" x2="{median:.1f}" y2="14"/>'
            "</svg>"
        )
    return ""
