"""Comparisons with evidence: bootstrap intervals of a metric, and a paired test of two models on the same rows.

A champion is replaced only on evidence: both models are scored on the same rows, the rows are
resampled with replacement ``rounds`` times, and each resample gives the difference of the metric
between them. The percentile interval of those differences at ``confidence`` says whether the
challenger is better beyond the noise of which rows happened to be labelled.

On more than :data:`MAX_RESAMPLE_ROWS` rows, each resample draws that many rows instead of all of them
(the m-out-of-n bootstrap), and its deviation from the metric on all the rows is scaled by
``sqrt(m / n)``: the spread of a metric on m rows is ``sqrt(n / m)`` times its spread on n rows. The
interval then costs the same on ten million rows as on a hundred thousand, and agrees with the full
bootstrap's (``tests/unit/test_core_compare.py``). Fewer rows are resampled whole, exactly as before.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from airflow_mlc.core.metrics import Predictions, compute
from airflow_mlc.spec import LOWER_IS_BETTER

#: Share of resamples on which the metric must be defined (an AUC needs both classes) for an interval to exist.
MIN_DEFINED_SHARE = 0.9
#: Rows drawn by each resample at most; larger sets of rows are resampled by the m-out-of-n bootstrap.
MAX_RESAMPLE_ROWS = 100_000


@dataclass(frozen=True)
class Comparison:
    """A challenger against a champion on the same rows, in the direction of improvement.

    ``improvement`` is positive when the challenger is better (lower for an error metric, higher for a
    score); ``low`` and ``high`` bound it at ``confidence``. ``relative`` is the improvement relative to
    the champion's value.
    """

    metric: str
    rows: int
    challenger: float
    champion: float
    improvement: float
    relative: float
    low: float
    high: float
    confidence: float
    rounds: int
    #: Rows of the champion's side when the two sides are different rows (an unpaired comparison), else None.
    champion_rows: int | None = None

    @property
    def significant(self) -> bool:
        """Whether the whole interval lies on the challenger's side of zero."""
        return self.low > 0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "significant": self.significant}

    def describe(self) -> str:
        """The comparison in words, as recorded with a decision."""
        if self.champion_rows is None:
            rows, resamples = f"on {self.rows} rows", "paired"
        else:
            rows, resamples = f"on {self.rows} and {self.champion_rows} rows", "independent"
        return (
            f"{self.metric} {self.challenger:.4g} vs the champion's {self.champion:.4g} {rows}: "
            f"improvement {self.improvement:+.4g} ({self.relative:+.2%}), {self.confidence:.0%} interval "
            f"[{self.low:+.4g}, {self.high:+.4g}] over {self.rounds} {resamples} resamples"
        )


def oriented(metric: str, value: float) -> float:
    """``value`` signed so that larger is better."""
    return -value if metric in LOWER_IS_BETTER else value


def _resamples(rows: int, rounds: int, seed: int) -> Any:
    """Row positions of each bootstrap resample (at most :data:`MAX_RESAMPLE_ROWS`), one at a time."""
    generator = np.random.default_rng(seed)
    size = min(rows, MAX_RESAMPLE_ROWS)
    for _ in range(rounds):
        yield generator.integers(0, rows, size)


def _as_if_whole(value: float, estimate: float, rows: int) -> float:
    """A metric on a resample of ``rows`` rows, as a resample of all of them would spread around ``estimate``."""
    if rows <= MAX_RESAMPLE_ROWS:
        return value
    return estimate + math.sqrt(MAX_RESAMPLE_ROWS / rows) * (value - estimate)


def _interval(values: list[float], rounds: int, confidence: float) -> tuple[float, float] | None:
    if len(values) < MIN_DEFINED_SHARE * rounds:
        return None
    tail = (1 - confidence) / 2
    low, high = np.quantile(np.asarray(values), [tail, 1 - tail])
    return float(low), float(high)


def metric_interval(
    name: str, predictions: Predictions, confidence: float, rounds: int, seed: int = 0
) -> tuple[float, float] | None:
    """The percentile bootstrap interval of metric ``name`` on ``predictions``.

    Returns None when the metric is undefined on the rows or on too many resamples of them.
    """
    estimate = compute(name, predictions) if len(predictions) else None
    if estimate is None:
        return None
    values = [
        _as_if_whole(value, estimate, len(predictions))
        for index in _resamples(len(predictions), rounds, seed)
        if (value := compute(name, predictions.take(index))) is not None
    ]
    return _interval(values, rounds, confidence)


def paired_comparison(
    name: str, challenger: Predictions, champion: Predictions, confidence: float, rounds: int, seed: int = 0
) -> Comparison | None:
    """Compare two models' predictions on the same rows with a paired bootstrap of the metric's difference.

    Each resample draws the same rows for both models, so what the rows have in common (easy or hard
    cases) cancels out of the difference. Returns None when the metric is undefined on the rows or on
    too many resamples (e.g. an AUC on rows of one class).
    """
    if len(challenger) != len(champion):
        raise ValueError(f"paired predictions differ in length: {len(challenger)} and {len(champion)}")
    return _comparison(name, challenger, champion, confidence, rounds, seed, paired=True)


def unpaired_comparison(
    name: str, current: Predictions, earlier: Predictions, confidence: float, rounds: int, seed: int = 0
) -> Comparison | None:
    """Compare a metric on two sets of rows (a model now and at its evaluation) by independent bootstraps.

    Both sets are resampled, each on its own, so the interval holds the noise of both estimates: an
    evaluation on few rows that happened to score high does not make every later window look worse.
    ``improvement`` is positive when ``current`` is better.
    """
    return _comparison(name, current, earlier, confidence, rounds, seed, paired=False)


def _comparison(
    name: str, first: Predictions, second: Predictions, confidence: float, rounds: int, seed: int, paired: bool
) -> Comparison | None:
    mine, theirs = compute(name, first), compute(name, second)
    if mine is None or theirs is None or len(first) == 0 or len(second) == 0:
        return None
    other_rows = _resamples(len(second), rounds, seed + 1) if not paired else None
    differences = []
    for index in _resamples(len(first), rounds, seed):
        other = index if other_rows is None else next(other_rows)
        a, b = compute(name, first.take(index)), compute(name, second.take(other))
        if a is not None and b is not None:
            a, b = _as_if_whole(a, mine, len(first)), _as_if_whole(b, theirs, len(second))
            differences.append(oriented(name, a) - oriented(name, b))
    bounds = _interval(differences, rounds, confidence)
    if bounds is None:
        return None
    improvement = oriented(name, mine) - oriented(name, theirs)
    relative = improvement / abs(theirs) if theirs else (0.0 if improvement == 0 else float(np.sign(improvement)))
    other = None if paired else len(second)
    return Comparison(name, len(first), mine, theirs, improvement, relative, *bounds, confidence, rounds, other)
