"""Evaluate: score the candidate, compare it with the champion on rows neither trained on, and apply the gates.

The promotion rule (docs/decisions.md):

1. The gate metric must be defined for the candidate on its test rows.
2. ``gates.beat_baseline``: the candidate is significantly better than a trivial model fitted on the
   training rows (most frequent class and class shares, or the mean), by a paired bootstrap.
3. ``gates.max`` / ``gates.min`` hold for the candidate on its test rows.
4. With a champion: both are scored on the test rows the champion never trained on (the newest of
   them when the data has a time column), at least ``gates.min_rows`` of them; the challenger's
   improvement is at least ``gates.min_improvement`` (relative) and the lower bound of its paired
   bootstrap interval at ``gates.confidence`` is above zero. With ``absolute_with_champion:
   allow_if_better``, a failed bound of rule 3 is waived when the champion fails the same bound on the
   compared rows and the challenger is significantly better than it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from airflow_mlc.core import tracking
from airflow_mlc.core.compare import Comparison, paired_comparison
from airflow_mlc.core.governance import (
    GovernanceCheck,
    fairness_check,
    permutation_importance_of,
    slice_check,
    slices_summary,
)
from airflow_mlc.core.ingest import to_times
from airflow_mlc.core.metrics import Predictions, compute, compute_all, predict
from airflow_mlc.core.prepare import row_hashes, split_key, split_rule
from airflow_mlc.errors import BadInputError
from airflow_mlc.spec import GatesSpec, ModelLifecycleSpec


@dataclass(frozen=True)
class ChampionModel:
    """The current champion, as the comparison needs it.

    ``train`` is its training data (to tell which test rows it never saw), ``data_end`` the end of its
    data window and ``split_rule`` how its data was split (``mlc.split_rule``); each may be unknown.
    """

    model: Any
    version: str
    data_end: str | None = None
    train: pd.DataFrame | None = None
    split_rule: str | None = None


@dataclass(frozen=True)
class Evaluation:
    """The evaluation of a candidate: its metrics, the comparisons behind the verdict, and why.

    ``metrics`` are the candidate's on all its test rows; ``champion_metrics`` the champion's on the
    ``scored_rows`` compared rows (described by ``scored_on``); ``comparison`` and ``baseline`` are the
    paired bootstrap comparisons with the champion and with the trivial model.
    """

    passed: bool
    metric: str
    metrics: dict[str, float]
    reasons: list[str]
    champion_version: str | None = None
    champion_metrics: dict[str, float] = field(default_factory=dict)
    scored_rows: int = 0
    scored_on: str = ""
    comparison: dict[str, Any] | None = None
    baseline: dict[str, Any] | None = None
    positive_class: str | None = None
    governance: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def effective_gates(
    gates: GatesSpec,
    max_value: float | None = None,
    min_value: float | None = None,
    min_improvement: float | None = None,
) -> GatesSpec:
    """The spec's gates with any of the run's overrides (from the trigger form) applied."""
    from pydantic import ValidationError

    overrides = {"max": max_value, "min": min_value, "min_improvement": min_improvement}
    chosen = {k: float(v) for k, v in overrides.items() if v is not None}
    try:
        return GatesSpec.model_validate({**gates.model_dump(), **chosen})
    except ValidationError as exc:
        problems = "; ".join(error["msg"].removeprefix("Value error, ") for error in exc.errors())
        raise BadInputError(f"the run's gate overrides {chosen}: {problems}") from None


def bound_failures(value: float, gates: GatesSpec) -> list[str]:
    """The absolute bounds (``gates.max``, ``gates.min``) that ``value`` breaks, in words."""
    failures = []
    if gates.max is not None and value > gates.max:
        failures.append(f"{gates.metric} {value:.4g} is above the maximum {gates.max:.4g}")
    if gates.min is not None and value < gates.min:
        failures.append(f"{gates.metric} {value:.4g} is below the minimum {gates.min:.4g}")
    return failures


def _baseline_model(spec: ModelLifecycleSpec, train: pd.DataFrame) -> Any:
    """The trivial model a candidate must beat: most frequent class with the class shares, or the mean."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    trivial = DummyRegressor(strategy="mean") if spec.task == "regression" else DummyClassifier(strategy="prior")
    return trivial.fit(train[spec.features.columns], train[spec.target])


def _compare(name: str, mine: Predictions, theirs: Predictions, gates: GatesSpec, seed: int) -> Comparison | None:
    return paired_comparison(name, mine, theirs, gates.confidence, gates.bootstrap_rounds, seed)


def baseline_check(
    spec: ModelLifecycleSpec, candidate: Predictions, train: pd.DataFrame, test: pd.DataFrame, gates: GatesSpec
) -> tuple[bool, str, Comparison | None]:
    """Whether the candidate is significantly better than the trivial model on its test rows."""
    name = gates.metric
    if len(test) < gates.min_rows:
        return (
            False,
            f"only {len(test)} test rows to compare with a trivial model (gates.min_rows {gates.min_rows})",
            None,
        )
    trivial = predict(
        _baseline_model(spec, train), test, spec.features.columns, spec.target, spec.task, candidate.positive
    )
    comparison = _compare(name, candidate, trivial, gates, spec.split.seed)
    if comparison is None:
        return False, f"{name} cannot be compared with a trivial model's on these {len(test)} test rows", None
    words = comparison.describe().replace("the champion's", "a trivial model's")
    if comparison.significant:
        return True, f"beats a trivial model: {words}", comparison
    return False, f"not significantly better than a trivial model: {words}", comparison


def holdout_rows(test: pd.DataFrame, spec: ModelLifecycleSpec, champion: ChampionModel) -> tuple[pd.DataFrame, str]:
    """The test rows the champion never trained on, and how they were chosen (in words).

    Rows seen by the champion are found by their key (``split.key``, else the features and target,
    plus the time column) in its training data. When that data cannot be read, a champion split by
    the same hash rule shares the candidate's test rows; otherwise no row is known to be unseen.
    With a time column, the rows newer than the champion's data are preferred when there are at least
    ``gates.min_rows`` of them.
    """
    time_column = spec.source.time_column
    key = split_key(spec)
    if time_column and time_column in test.columns and time_column not in key:
        key.append(time_column)
    if champion.train is not None and all(column in champion.train.columns for column in key):
        seen = np.isin(row_hashes(test, key), row_hashes(champion.train, key))
        unseen, rule = test[~seen], f"not in the champion's training data (matched on {_columns_in_words(key)})"
    elif champion.split_rule and champion.split_rule == split_rule(spec) and spec.split.method == "random":
        unseen, rule = test, f"held out by the champion's own split rule ({champion.split_rule})"
    else:
        reason = "its training data cannot be read and it was split by another rule"
        return test.iloc[:0], f"no test rows: which rows the champion trained on is unknown ({reason})"
    if time_column and champion.data_end and time_column in unseen.columns:
        newer = unseen[to_times(unseen[time_column], spec.source) >= pd.Timestamp(champion.data_end)]
        if len(newer) >= spec.gates.min_rows:
            return newer, f"the {len(newer)} test rows newer than the champion's data (which ends {champion.data_end})"
        rule += f"; only {len(newer)} are newer than its data (which ends {champion.data_end})"
    return unseen, f"the {len(unseen)} test rows {rule}"


def _columns_in_words(columns: list[str]) -> str:
    if len(columns) <= 4:
        return ", ".join(columns)
    return f"{len(columns)} columns: {', '.join(columns[:3])}, ..."


@dataclass(frozen=True)
class _ChampionCheck:
    """The challenger against the champion on the rows neither trained on (``scored_on`` says which)."""

    better: bool
    reason: str
    rows: int
    scored_on: str
    champion_metrics: dict[str, float] = field(default_factory=dict)
    comparison: Comparison | None = None
    compared: pd.DataFrame | None = None  # the rows both were scored on, and each model's predictions of them
    mine: Predictions | None = None
    theirs: Predictions | None = None


def _champion_check(
    spec: ModelLifecycleSpec,
    candidate: Any,
    positive: Any,
    test: pd.DataFrame,
    gates: GatesSpec,
    champion: ChampionModel,
) -> _ChampionCheck:
    rows, scored_on = holdout_rows(test, spec, champion)
    name = gates.metric
    if len(rows) < gates.min_rows:
        reason = f"only {len(rows)} rows neither model trained on (gates.min_rows {gates.min_rows}): {scored_on}"
        return _ChampionCheck(False, reason, len(rows), scored_on)
    features, target = spec.features.columns, spec.target
    mine = predict(candidate, rows, features, target, spec.task, positive)
    theirs = predict(champion.model, rows, features, target, spec.task, positive)
    champion_metrics = compute_all(theirs)
    comparison = _compare(name, mine, theirs, gates, spec.split.seed)
    if comparison is None:
        reason = f"{name} cannot be compared on {scored_on}"
        return _ChampionCheck(False, reason, len(rows), scored_on, champion_metrics, None, rows, mine, theirs)
    words = comparison.describe()
    if comparison.improvement <= 0 or comparison.relative < gates.min_improvement:
        reason = f"does not beat the champion by the required margin of {gates.min_improvement:.2%}: {words}"
        better = False
    elif not comparison.significant:
        reason, better = f"not significantly better than the champion: {words}", False
    else:
        reason, better = f"significantly better than the champion: {words}", True
    return _ChampionCheck(better, reason, len(rows), scored_on, champion_metrics, comparison, rows, mine, theirs)


def _waived(failures: list[str], gates: GatesSpec, comparison: Comparison | None) -> bool:
    """Whether a champion that fails every bound the challenger fails, by more, lets the bounds be waived."""
    if gates.absolute_with_champion != "allow_if_better" or comparison is None or not comparison.significant:
        return False
    return bool(failures) and len(bound_failures(comparison.champion, gates)) >= len(failures)


def evaluate(
    spec: ModelLifecycleSpec,
    candidate: Any,
    test: pd.DataFrame,
    gates: GatesSpec,
    champion: ChampionModel | None = None,
    train: pd.DataFrame | None = None,
    positive_class: Any = None,
) -> Evaluation:
    """Score ``candidate`` (a fitted model) on ``test`` and decide whether it may take ``champion``.

    ``train`` (its training rows) gives the trivial model of ``gates.beat_baseline``; without it that
    check is skipped and the reasons say so. ``positive_class`` is the candidate's (binary only).
    """
    name = gates.metric
    features, target = spec.features.columns, spec.target
    mine = predict(candidate, test, features, target, spec.task, positive_class)
    metrics = compute_all(mine)
    if compute(name, mine) is None:
        raise BadInputError(
            f"gates.metric {name!r} is not defined for this model on its {len(test)} test rows "
            f"(computed: {sorted(metrics)}); a ranking metric needs scores and both classes among the rows"
        )
    passed, reasons = True, []
    baseline: Comparison | None = None
    if gates.beat_baseline and train is not None:
        ok, reason, baseline = baseline_check(spec, mine, train, test, gates)
        passed &= ok
        baseline_reason = [reason]
    elif gates.beat_baseline:
        baseline_reason = ["not compared with a trivial model: the training rows were not given"]
    else:
        baseline_reason = []
    failures = bound_failures(metrics[name], gates)
    check = _champion_check(spec, candidate, mine.positive, test, gates, champion) if champion is not None else None
    if check is not None:
        passed &= check.better
        reasons.append(check.reason)
        if failures and _waived(failures, gates, check.comparison):
            reasons.append(
                "waived as the champion fails them too, by more, on the compared rows "
                f"(gates.absolute_with_champion: allow_if_better): {'; '.join(failures)}"
            )
            failures = []
    passed &= not failures
    reasons.extend(baseline_reason)
    reasons.extend(failures)
    if passed and not failures:
        reasons.append(f"{name} {metrics[name]:.4g} passes the thresholds")
    governance = governance_checks(spec, candidate, test, gates, mine, check)
    for verdict in governance:
        passed &= not verdict.blocked
        reasons.extend(verdict.reasons)
    comparison = check.comparison if check is not None else None
    return Evaluation(
        passed=bool(passed),
        metric=name,
        metrics=metrics,
        reasons=reasons,
        champion_version=champion.version if champion is not None else None,
        champion_metrics=check.champion_metrics if check is not None else {},
        scored_rows=check.rows if check is not None else len(test),
        scored_on=check.scored_on if check is not None else f"all {len(test)} test rows",
        comparison=comparison.as_dict() if comparison is not None else None,
        baseline=baseline.as_dict() if baseline is not None else None,
        positive_class=None if mine.positive is None else str(mine.positive),
        governance={verdict.name: verdict.as_dict() for verdict in governance},
    )


def governance_checks(
    spec: ModelLifecycleSpec,
    candidate: Any,
    test: pd.DataFrame,
    gates: GatesSpec,
    mine: Predictions,
    check: _ChampionCheck | None,
) -> list[GovernanceCheck]:
    """The fairness, explanation and slice checks the spec asks for (:mod:`airflow_mlc.core.governance`).

    Fairness and explanations are measured on all the candidate's test rows; slices on the rows compared
    with the champion (all the test rows, for the candidate alone, without a champion).
    """
    verdicts = []
    if gates.fairness is not None:
        verdicts.append(fairness_check(gates.fairness, mine, test))
    if spec.explanations.importance or spec.explanations.forbidden:
        verdicts.append(permutation_importance_of(spec, candidate, test, mine.positive, spec.explanations))
    if gates.slices is not None:
        if check is not None and check.compared is not None and check.mine is not None:
            verdicts.append(slice_check(spec, gates.slices, check.compared, check.mine, check.theirs))
        else:
            verdicts.append(slice_check(spec, gates.slices, test, mine, None))
    return verdicts


def version_tags(run_tags: Mapping[str, str], evaluation: Mapping[str, Any]) -> dict[str, str]:
    """The tags of a new model version: its training run's ``mlc.*`` tags and the evaluation behind the decision.

    The evaluation gives both scores (on the same compared rows when there is a champion), the
    compared rows and the improvement's interval.
    """
    metric = evaluation["metric"]
    comparison = evaluation.get("comparison")
    score = comparison["challenger"] if comparison else evaluation["metrics"][metric]
    tags = {k: v for k, v in run_tags.items() if k.startswith(tracking.TAG_PREFIX)}
    tags.update({tracking.TAG_SCORE_METRIC: metric, tracking.TAG_SCORE: str(score)})
    if evaluation.get("scored_on"):
        tags[tracking.TAG_SCORED_ON] = str(evaluation["scored_on"])
        tags[tracking.TAG_SCORED_ROWS] = str(evaluation.get("scored_rows", ""))
    if comparison:
        tags.update(
            {
                tracking.TAG_CHAMPION_SCORE: str(comparison["champion"]),
                tracking.TAG_COMPARED_WITH: str(evaluation.get("champion_version")),
                tracking.TAG_IMPROVEMENT: str(comparison["improvement"]),
                tracking.TAG_CI_LOW: str(comparison["low"]),
                tracking.TAG_CI_HIGH: str(comparison["high"]),
                tracking.TAG_CONFIDENCE: str(comparison["confidence"]),
            }
        )
    elif evaluation.get("champion_version"):
        tags[tracking.TAG_COMPARED_WITH] = str(evaluation["champion_version"])
    tags.update(governance_tags(evaluation.get("governance") or {}))
    return tags


def governance_tags(governance: Mapping[str, Any]) -> dict[str, str]:
    """The version's summary of its governance checks: its most important features, the fairness and slice verdicts."""
    tags = {}
    ranking = (governance.get("explanations") or {}).get("details", {}).get("ranking", [])
    if ranking:
        tags[tracking.TAG_TOP_FEATURES] = ", ".join(entry["feature"] for entry in ranking[:3])
    fairness = governance.get("fairness")
    if fairness:
        tags[tracking.TAG_FAIRNESS] = ("blocked: " if fairness["blocked"] else "") + " ".join(fairness["reasons"])[:500]
    if governance.get("slices"):
        tags[tracking.TAG_SLICES] = slices_summary(governance["slices"])[:500]
    return tags


#: Where the governance checks' measurements are logged in the candidate's run (docs/governance.md).
GOVERNANCE_ARTIFACT = "evaluation/governance.json"


def record_evaluation(client: Any, run_id: str, evaluation: Evaluation) -> None:
    """Log the evaluation to the candidate's MLflow run.

    ``eval_*`` and ``champion_*`` metrics, ``fairness_gap_<column>`` and ``importance_<feature>`` metrics, the
    governance checks as :data:`GOVERNANCE_ARTIFACT`, and the verdict.
    """
    values = {f"eval_{k}": v for k, v in evaluation.metrics.items()}
    values.update({f"champion_{k}": v for k, v in evaluation.champion_metrics.items()})
    for column, measured in evaluation.governance.get("fairness", {}).get("details", {}).get("columns", {}).items():
        values[tracking.metric_key(f"fairness_gap_{column}")] = measured["gap"]
    for entry in evaluation.governance.get("explanations", {}).get("details", {}).get("ranking", []):
        values[tracking.metric_key(f"importance_{entry['feature']}")] = entry["mean"]
    client.log_batch(run_id, metrics=tracking.metric_entities(values))
    if evaluation.governance:
        client.log_dict(run_id, evaluation.governance, GOVERNANCE_ARTIFACT)
    client.set_tag(run_id, tracking.TAG_GATE_PASSED, str(evaluation.passed).lower())


def current_champion(client: Any, spec: ModelLifecycleSpec, options: dict[str, Any] | None) -> ChampionModel | None:
    """The version ``champion`` points at, loaded with what the comparison needs; None without one."""
    from airflow_mlc.core.registry import CHAMPION, version_by_alias
    from airflow_mlc.core.storage import read_parquet_if_there

    version = version_by_alias(client, spec.registered_model_name, CHAMPION)
    if version is None:
        return None
    tags = version.tags
    return ChampionModel(
        model=tracking.load_model(f"models:/{spec.registered_model_name}/{version.version}"),
        version=str(version.version),
        data_end=tags.get(tracking.TAG_WINDOW_END) or None,
        train=read_parquet_if_there(tags.get(tracking.TAG_TRAIN_DATA), options),
        split_rule=tags.get(tracking.TAG_SPLIT_RULE) or None,
    )


def evaluate_run(
    spec: ModelLifecycleSpec,
    client: Any,
    options: dict[str, Any] | None,
    gates: GatesSpec,
    training: Mapping[str, Any],
    test_uri: str,
    train_uri: str | None = None,
) -> Evaluation:
    """Evaluate the model of a training run (``training``: ``run_id``, ``model_uri``) and log the result to it.

    Reads the test rows (and the training rows, for the trivial model), loads the candidate and the
    current champion, applies ``evaluate`` and records it with ``record_evaluation``.
    """
    from airflow_mlc.core.storage import read_parquet

    run_id = str(training["run_id"])
    candidate = tracking.load_model(str(training["model_uri"]))
    # the recorded text; scoring matches it to the model's class by value or by text
    positive = client.get_run(run_id).data.tags.get(tracking.TAG_POSITIVE_CLASS) or None
    result = evaluate(
        spec,
        candidate,
        read_parquet(test_uri, options),
        gates,
        champion=current_champion(client, spec, options),
        train=read_parquet(train_uri, options) if train_uri else None,
        positive_class=positive,
    )
    record_evaluation(client, run_id, result)
    return result
