"""Governance checks of a candidate at evaluation: bias between groups, explanations, and slices.

Each check returns what it measured, whether it blocks the promotion, and why (docs/governance.md):

- :func:`fairness_check` (``gates.fairness``): a metric per group of each sensitive column, measured with
  fairlearn's ``MetricFrame`` on the candidate's test rows; a gap between two judged groups above
  ``max_gap`` blocks, with the groups and the gap named.
- :func:`permutation_importance_of` (``explanations``): scikit-learn's permutation importance of the raw
  feature columns on (a sample of) the test rows, scored by the gate metric; a ``forbidden`` feature among
  the ``top`` ones that matters (:func:`_matters`) blocks.
- :func:`slice_check` (``gates.slices``): the gate metric of the candidate and of the champion per value
  of each slice column, on the rows they were compared on; with ``max_loss``, a slice where the candidate
  is worse by more than that share and significantly so (paired bootstrap) blocks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from airflow_mlc.core.compare import oriented, paired_comparison
from airflow_mlc.core.metrics import Predictions, compute, predict
from airflow_mlc.errors import BadInputError, DataError
from airflow_mlc.spec import BINARY_FAIRNESS_METRICS, ExplanationsSpec, FairnessSpec, ModelLifecycleSpec, SlicesSpec

#: The group name of rows whose sensitive or slice value is missing.
MISSING = "(missing)"


@dataclass(frozen=True)
class GovernanceCheck:
    """One check's verdict: ``blocked`` with ``reasons`` (each naming what failed), and what it measured."""

    name: str
    blocked: bool
    reasons: list[str]
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _groups(frame: pd.DataFrame, column: str, what: str) -> pd.Series:
    """The values of ``column`` as group names (text; missing values as :data:`MISSING`)."""
    if column not in frame.columns:
        raise DataError(f"{what}: column {column!r} is not in the test rows (columns present: {list(frame.columns)})")
    values = frame[column]
    return values.astype(object).where(values.notna(), MISSING).map(str).reset_index(drop=True)


def _fairness_function(metric: str, positive: Any) -> Any:
    """The per-group function of ``metric`` for fairlearn's MetricFrame (``y_true``, ``y_pred``)."""
    from fairlearn import metrics as fm
    from sklearn.metrics import mean_absolute_error, precision_score, root_mean_squared_error

    functions = {
        "selection_rate": lambda t, p: fm.selection_rate(t, p, pos_label=positive),
        "recall": lambda t, p: fm.true_positive_rate(t, p, pos_label=positive),
        "false_positive_rate": lambda t, p: fm.false_positive_rate(t, p, pos_label=positive),
        "false_negative_rate": lambda t, p: fm.false_negative_rate(t, p, pos_label=positive),
        "precision": lambda t, p: precision_score(t, p, pos_label=positive, zero_division=0),
        "error_rate": lambda t, p: float(np.mean(np.asarray(t) != np.asarray(p))),
        "accuracy": lambda t, p: float(np.mean(np.asarray(t) == np.asarray(p))),
        "mae": mean_absolute_error,
        "rmse": root_mean_squared_error,
        "mean_prediction": lambda t, p: float(np.mean(p)),
    }
    return functions[metric]


def fairness_check(fairness: FairnessSpec, predictions: Predictions, test: pd.DataFrame) -> GovernanceCheck:
    """The gap of ``fairness.metric`` between the groups of each sensitive column, on the candidate's test rows.

    ``predictions`` are the candidate's on ``test``, row for row. Groups with fewer than
    ``min_group_rows`` rows, or on which the metric has no value, are reported but not judged.

    Raises:
        DataError: a sensitive column is missing from the test rows.
        BadInputError: a one-class metric on a model that is not a binary classification.
    """
    from fairlearn.metrics import MetricFrame

    metric = fairness.metric
    if metric in BINARY_FAIRNESS_METRICS and not predictions.binary:
        raise BadInputError(
            f"gates.fairness.metric {metric!r} needs a binary classification; this model has "
            f"{len(predictions.classes)} classes: use error_rate or accuracy"
        )
    function = _fairness_function(metric, predictions.positive)
    columns: dict[str, Any] = {}
    reasons: list[str] = []
    for column in fairness.sensitive:
        groups = _groups(test, column, "gates.fairness.sensitive")
        frame = MetricFrame(
            metrics=function, y_true=predictions.y_true, y_pred=predictions.predicted, sensitive_features=groups
        )
        counts = groups.value_counts()
        values = {str(group): float(value) for group, value in frame.by_group.items()}
        judged = {
            group: value
            for group, value in values.items()
            if counts.get(group, 0) >= fairness.min_group_rows and math.isfinite(value)
        }
        ordered = sorted(judged, key=judged.__getitem__)
        low, high = (ordered[0], ordered[-1]) if len(ordered) >= 2 else (None, None)
        gap = judged[high] - judged[low] if low is not None and high is not None else 0.0
        columns[column] = {
            "groups": {group: {"value": values[group], "rows": int(counts.get(group, 0))} for group in values},
            "judged": sorted(judged),
            "gap": gap,
            "lowest": low,
            "highest": high,
        }
        if low is not None and high is not None and gap > fairness.max_gap:
            reasons.append(
                f"fairness: {metric} differs by {gap:.4g} between {column}={high!r} ({judged[high]:.4g}) "
                f"and {column}={low!r} ({judged[low]:.4g}), above gates.fairness.max_gap {fairness.max_gap:g}"
            )
    blocked = bool(reasons)
    if not blocked:
        gaps = ", ".join(f"{c} {d['gap']:.4g}" for c, d in columns.items())
        reasons.append(f"fairness: {metric} gaps between groups within {fairness.max_gap:g} ({gaps})")
    details = {"metric": metric, "max_gap": fairness.max_gap, "columns": columns}
    return GovernanceCheck("fairness", blocked, reasons, details)


def permutation_importance_of(
    spec: ModelLifecycleSpec, model: Any, test: pd.DataFrame, positive: Any, explanations: ExplanationsSpec
) -> GovernanceCheck:
    """Permutation importance of each raw feature column, by the gate metric, and the forbidden-features guard.

    The importance of a feature is how much the gate metric gets worse (in its own direction) when that
    column is shuffled, averaged over ``repeats`` shuffles, on at most ``max_rows`` test rows (seeded by
    ``split.seed``). Features are ranked by it; a ``forbidden`` one among the ``top`` that matters
    (beyond the shuffles' noise, and at least a tenth of the top feature's importance) blocks the promotion.
    """
    from sklearn.inspection import permutation_importance

    metric, features, target = spec.gates.metric, spec.features.columns, spec.target
    rows = test
    if len(test) > explanations.max_rows:
        rows = test.sample(explanations.max_rows, random_state=spec.split.seed)

    def score(estimator: Any, x: pd.DataFrame, y: pd.Series) -> float:
        labelled = x.assign(**{target: y.to_numpy()})
        value = compute(metric, predict(estimator, labelled, features, target, spec.task, positive))
        return oriented(metric, value) if value is not None else float("nan")

    found = permutation_importance(
        model, rows[features], rows[target], scoring=score, n_repeats=explanations.repeats, random_state=spec.split.seed
    )
    means, spreads = found.importances_mean, found.importances_std
    order = sorted(range(len(features)), key=lambda at: -means[at])
    ranking = [{"feature": features[at], "mean": float(means[at]), "std": float(spreads[at])} for at in order]
    leaks = [
        (rank, features[at], float(means[at]))
        for rank, at in enumerate(order[: explanations.top], start=1)
        if features[at] in explanations.forbidden and _matters(means[at], spreads[at], means[order[0]])
    ]
    reasons = [
        f"explanations: the forbidden feature {feature!r} is among the {explanations.top} most important "
        f"(rank {rank}, {metric} worse by {mean:.4g} when shuffled): a leak?"
        for rank, feature, mean in leaks
    ]
    if not reasons and explanations.forbidden:
        reasons.append(f"explanations: no forbidden feature among the {explanations.top} most important")
    details = {"metric": metric, "rows": len(rows), "repeats": explanations.repeats, "ranking": ranking}
    return GovernanceCheck("explanations", bool(leaks), reasons, details)


#: A feature matters when its importance is at least this share of the most important feature's.
MATERIAL_SHARE = 0.1


def _matters(mean: float, spread: float, top: float) -> bool:
    """Whether shuffling a feature hurts the metric beyond the shuffles' own noise, and materially.

    Its mean importance must exceed two standard deviations of its shuffles (a feature of pure noise has a
    mean near zero, of either sign) and :data:`MATERIAL_SHARE` of the most important feature's.
    """
    return bool(mean > 0 and mean > 2 * spread and mean >= MATERIAL_SHARE * top)


def slice_check(
    spec: ModelLifecycleSpec,
    slices: SlicesSpec,
    rows: pd.DataFrame,
    mine: Predictions,
    theirs: Predictions | None,
) -> GovernanceCheck:
    """The gate metric per slice for the candidate (``mine``) and, when there is one, the champion (``theirs``).

    ``rows`` are the rows both were scored on, row for row with the predictions. A slice is judged when it
    has ``min_rows`` rows and ``max_loss`` is set: it blocks when the candidate is worse there than the
    champion by more than ``max_loss`` (relative) and the paired bootstrap interval of the difference lies
    wholly below zero.
    """
    metric = spec.gates.metric
    columns: dict[str, Any] = {}
    reasons: list[str] = []
    for column in slices.columns:
        groups = _groups(rows, column, "gates.slices.columns")
        found: dict[str, Any] = {}
        for group in sorted(groups.unique()):
            index = np.flatnonzero((groups == group).to_numpy())
            entry: dict[str, Any] = {"rows": len(index), "candidate": compute(metric, mine.take(index))}
            if theirs is not None:
                entry["champion"] = compute(metric, theirs.take(index))
                if slices.max_loss is not None and len(index) >= slices.min_rows:
                    reason = _slice_loss(metric, column, group, mine.take(index), theirs.take(index), slices, spec)
                    entry["blocked"] = reason is not None
                    if reason is not None:
                        reasons.append(reason)
            found[group] = entry
        columns[column] = found
    details = {"metric": metric, "max_loss": slices.max_loss, "columns": columns}
    return GovernanceCheck("slices", bool(reasons), reasons, details)


def slices_summary(check: Mapping[str, Any]) -> str:
    """The slice check in words, for the version's ``mlc.slices`` tag and the Models page.

    ``blocked: `` and the reasons when a slice blocked; else each column's worst slice: where the candidate
    trails the champion most, or, with no champion, where it scores worst.
    """
    if check["blocked"]:
        return "blocked: " + " ".join(check["reasons"])
    metric, worst = check["details"]["metric"], []
    for column, slices in check["details"]["columns"].items():
        scored = {name: entry for name, entry in slices.items() if entry.get("candidate") is not None}
        if not scored:
            continue

        def standing(entry: Mapping[str, Any]) -> float:
            champion = entry.get("champion")
            return oriented(metric, entry["candidate"]) - (oriented(metric, champion) if champion is not None else 0)

        name = min(scored, key=lambda group: standing(scored[group]))
        entry = scored[name]
        versus = f" vs the champion's {entry['champion']:.4g}" if entry.get("champion") is not None else ""
        worst.append(f"{column}={name!r}: {metric} {entry['candidate']:.4g}{versus} ({entry['rows']} rows)")
    return "worst slices: " + "; ".join(worst) if worst else ""


def _slice_loss(
    metric: str,
    column: str,
    group: str,
    mine: Predictions,
    theirs: Predictions,
    slices: SlicesSpec,
    spec: ModelLifecycleSpec,
) -> str | None:
    """Why the candidate's loss on one slice blocks it, or None."""
    comparison = paired_comparison(
        metric, mine, theirs, spec.gates.confidence, spec.gates.bootstrap_rounds, spec.split.seed
    )
    if comparison is None or slices.max_loss is None:
        return None
    loss = -comparison.relative
    if loss > slices.max_loss and comparison.high < 0:
        return (
            f"slices: on {column}={group!r} ({comparison.rows} rows) {metric} {comparison.challenger:.4g} vs the "
            f"champion's {comparison.champion:.4g}, {loss:.1%} worse (gates.slices.max_loss {slices.max_loss:.0%}), "
            f"{comparison.confidence:.0%} interval of the difference [{comparison.low:+.4g}, {comparison.high:+.4g}]"
        )
    return None
