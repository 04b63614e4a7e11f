"""Evaluate: score the candidate and the champion on the newest labelled rows, and apply the gates."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from airflow_mlc.core.metrics import improves, score_model
from airflow_mlc.errors import BadInputError
from airflow_mlc.spec import GatesSpec, ModelLifecycleSpec


@dataclass(frozen=True)
class Evaluation:
    passed: bool
    metric: str
    metrics: dict[str, float]
    reasons: list[str]
    champion_version: str | None = None
    champion_metrics: dict[str, float] = field(default_factory=dict)
    scored_rows: int = 0
    scored_on: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def effective_gates(
    gates: GatesSpec,
    max_value: float | None = None,
    min_value: float | None = None,
    min_improvement: float | None = None,
) -> GatesSpec:
    """The spec's gates with any of the run's overrides (from the trigger form) applied."""
    overrides = {"max": max_value, "min": min_value, "min_improvement": min_improvement}
    return gates.model_copy(update={k: float(v) for k, v in overrides.items() if v is not None})


def apply_gates(
    metrics: dict[str, float], gates: GatesSpec, champion_metrics: dict[str, float] | None
) -> tuple[bool, list[str]]:
    """Absolute thresholds first, then the margin over the champion; returns (passed, reasons)."""
    name = gates.metric
    if name not in metrics:
        raise BadInputError(
            f"gates.metric {name!r} could not be computed for this model and test set (computed: {sorted(metrics)}); "
            "roc_auc needs an estimator with predict_proba and a test set with more than one class"
        )
    value = metrics[name]
    reasons = []
    if gates.max is not None and value > gates.max:
        reasons.append(f"{name} {value:.4g} is above the maximum {gates.max:.4g}")
    if gates.min is not None and value < gates.min:
        reasons.append(f"{name} {value:.4g} is below the minimum {gates.min:.4g}")
    if champion_metrics:
        champion = champion_metrics[name]
        if not improves(value, champion, name, gates.min_improvement):
            reasons.append(
                f"{name} {value:.4g} does not beat the champion's {champion:.4g} "
                f"by the required margin of {gates.min_improvement:.2%}"
            )
    if not reasons:
        against = f" and beats the champion's {champion_metrics[name]:.4g}" if champion_metrics else ""
        reasons.append(f"{name} {value:.4g} passes the thresholds{against}")
        return True, reasons
    return False, reasons


def newest_rows(test: pd.DataFrame, time_column: str | None, champion_end: str | None) -> tuple[pd.DataFrame, str]:
    """The test rows newer than the champion's training data, so neither model has seen them.

    Falls back to the whole test set (and says so) when there is no time column, no recorded end,
    or no row after it.
    """
    if time_column and champion_end and time_column in test.columns:
        times = pd.to_datetime(test[time_column], utc=True)
        newer = test[times >= pd.Timestamp(champion_end)]
        if not newer.empty:
            return newer, f"the {len(newer)} test rows newer than the champion's data (which ends {champion_end})"
        return test, f"all {len(test)} test rows (none is newer than the champion's data, which ends {champion_end})"
    return test, f"all {len(test)} test rows"


def evaluate(
    spec: ModelLifecycleSpec,
    candidate: Any,
    test: pd.DataFrame,
    gates: GatesSpec,
    champion: Any | None = None,
    champion_version: str | None = None,
    champion_end: str | None = None,
) -> Evaluation:
    """Score ``candidate`` and, when given, ``champion`` (fitted models) and apply ``gates``.

    With a champion, both are scored on the test rows newer than the champion's data
    (``champion_end``), so the comparison is on the newest labelled window; otherwise on the whole
    test set.
    """
    if champion is not None:
        test, scored_on = newest_rows(test, spec.source.time_column, champion_end)
    else:
        scored_on = f"all {len(test)} test rows"
    features = spec.features.columns
    metrics = score_model(candidate, test, features, spec.target, spec.task)
    champion_metrics = score_model(champion, test, features, spec.target, spec.task) if champion is not None else {}
    passed, reasons = apply_gates(metrics, gates, champion_metrics)
    return Evaluation(
        passed=passed,
        metric=gates.metric,
        metrics=metrics,
        reasons=reasons,
        champion_version=champion_version,
        champion_metrics=champion_metrics,
        scored_rows=len(test),
        scored_on=scored_on,
    )
