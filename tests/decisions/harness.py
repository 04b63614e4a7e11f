"""The product's three decisions, run as its DAGs run them, without Airflow or MLflow around them.

* training: ``clean`` -> ``split`` -> ``fit`` -> ``evaluate`` (the trivial-model check with the training
  rows), as the training DAG's prepare, train and evaluate tasks do;
* monitoring: the Evidently drift report of a window against the champion's training rows (its
  ``train.parquet``, the default reference) and the quality check of the champion on the window's
  labelled rows against its evaluation metric and rows (its ``test.parquet``); retraining is
  requested when ``signals`` finds a reason (a fresh window, no earlier request: no cooldown applies);
* promotion: ``evaluate`` of a challenger with a champion, both trained on the same training rows,
  the champion's training frame given so that the rule finds the rows it never saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from airflow_mlc.core.drift import drift_report, quality_baseline, quality_check
from airflow_mlc.core.evaluate import ChampionModel, Evaluation, evaluate
from airflow_mlc.core.metrics import compute, predict
from airflow_mlc.core.prepare import clean, split, split_rule
from airflow_mlc.core.retrain import signals
from airflow_mlc.core.train import fit, training_classes
from airflow_mlc.spec import FeaturesSpec, ModelLifecycleSpec
from tests.decisions.datasets import Dataset

#: The challengers that must never take the place of a good champion.
WRONG_CHALLENGERS = ("worse", "shuffled", "trivial")


@dataclass
class Trained:
    """A model trained by the product's training path, and what monitoring and promotion need of it."""

    dataset: Dataset
    trial: int
    spec: ModelLifecycleSpec
    train: pd.DataFrame
    test: pd.DataFrame
    model: Any
    evaluation: Evaluation
    positive: Any
    _challengers: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def metric(self) -> str:
        return self.spec.gates.metric

    @property
    def quality_baseline(self) -> float | None:
        """The baseline of the quality check: what the monitoring task reads from the champion's training run."""
        run_metrics = {f"eval_{k}": v for k, v in self.evaluation.metrics.items()}
        return quality_baseline(run_metrics, self.metric)

    def challenger(self, kind: str) -> Any:
        """A challenger trained on the same training rows (cached by kind).

        ``good``: the spec's model (a refit, the same as the champion); ``worse``: the spec's estimator
        on the dataset's weak features only; ``shuffled``: the spec's model fitted on shuffled labels;
        ``trivial``: a ``DummyClassifier`` (class shares) or ``DummyRegressor`` (the mean); ``similar``:
        the spec's model fitted on a random 90 % of the training rows.
        """
        if kind not in self._challengers:
            self._challengers[kind] = _challenger(kind, self.spec, self.train, self.dataset, self.trial)
        return self._challengers[kind]

    def trivial_metric(self) -> float | None:
        """The gate metric of a trivial model (trained on the training rows) on the test rows."""
        spec = self.spec
        trivial = self.challenger("trivial")
        predictions = predict(trivial, self.test, spec.features.columns, spec.target, spec.task, self.positive)
        return compute(self.metric, predictions)


def train_champion(dataset: Dataset, trial: int = 0) -> Trained:
    """The training path on the dataset's history of ``trial``: clean, split, fit, evaluate without a champion."""
    spec = dataset.spec
    train, test = split(clean(dataset.history(trial), spec), spec)
    model, _, _ = fit(spec, train)
    positive = training_classes(spec, train)[1]
    evaluation = evaluate(spec, model, test, spec.gates, train=train, positive_class=positive)
    return Trained(dataset, trial, spec, train, test, model, evaluation, positive)


def _restricted(spec: ModelLifecycleSpec, columns: tuple[str, ...]) -> ModelLifecycleSpec:
    features = FeaturesSpec(
        numeric=[c for c in spec.features.numeric if c in columns],
        categorical=[c for c in spec.features.categorical if c in columns],
    )
    return spec.model_copy(update={"features": features})


def _challenger(kind: str, spec: ModelLifecycleSpec, train: pd.DataFrame, dataset: Dataset, trial: int) -> Any:
    from sklearn.dummy import DummyClassifier, DummyRegressor

    if kind == "good":
        return fit(spec, train)[0]
    if kind == "worse":
        return fit(_restricted(spec, dataset.weak_features), train)[0]
    if kind == "shuffled":
        labels = dataset.rng(trial, 7).permutation(train[spec.target].to_numpy())
        return fit(spec, train.assign(**{spec.target: labels}))[0]
    if kind == "similar":
        keep = np.sort(dataset.rng(trial, 8).permutation(len(train))[: round(0.9 * len(train))])
        return fit(spec, train.iloc[keep].reset_index(drop=True))[0]
    if kind == "trivial":
        trivial = DummyRegressor(strategy="mean") if spec.task == "regression" else DummyClassifier(strategy="prior")
        return trivial.fit(train[spec.features.columns], train[spec.target])
    raise ValueError(f"unknown challenger {kind!r}")


def promotion(trained: Trained, challenger: Any, champion: Any) -> Evaluation:
    """The evaluate task's verdict on ``challenger`` against ``champion``, both trained on ``trained.train``."""
    spec = trained.spec
    holder = ChampionModel(champion, "1", train=trained.train, split_rule=split_rule(spec))
    return evaluate(
        spec,
        challenger,
        trained.test,
        spec.gates,
        champion=holder,
        train=trained.train,
        positive_class=trained.positive,
    )


def promoted(trained: Trained, challenger: Any, champion: Any) -> bool:
    """Whether ``challenger`` would take ``champion``'s place; an evaluation that fails counts as not promoted."""
    from airflow_mlc.errors import BadInputError

    try:
        return promotion(trained, challenger, champion).passed
    except BadInputError:
        return False


@dataclass
class Verdict:
    """What a monitoring run decides on one window."""

    requested: bool
    signals: list[str]
    drift: dict[str, Any]
    quality: dict[str, Any]

    @property
    def drift_detected(self) -> bool:
        return bool(self.drift.get("drift_detected"))

    @property
    def degraded(self) -> bool:
        return bool(self.quality.get("degraded"))

    def describe(self) -> str:
        """The verdict's reasons, or its figures when nothing was found."""
        if self.signals:
            return "; ".join(self.signals)
        quality = {k: self.quality.get(k) for k in ("metric", "baseline", "degradation", "labelled_rows")}
        live = (self.quality.get("live_metrics") or {}).get(self.quality.get("metric"))
        return f"no signal: drifted share {self.drift.get('drifted_share')}; quality {quality}, live {live}"


def quality(trained: Trained, window: pd.DataFrame) -> Any:
    """The quality task's verdict (a ``QualityResult``) on ``window`` for the champion ``trained``.

    As the task gives them: the positive class as the champion's version records it (``mlc.positive_class``,
    text), and the rows the champion was evaluated on (its ``test.parquet``), whose own noise then counts.
    """
    recorded = None if trained.positive is None else str(trained.positive)
    spec, baseline = trained.spec, trained.quality_baseline
    result, _ = quality_check(spec, trained.model, window, baseline, recorded, baseline_rows=trained.test)
    return result


def monitor(trained: Trained, window: pd.DataFrame) -> Verdict:
    """The monitoring DAG's decision on ``window`` for the champion ``trained`` (a fresh window, no cooldown)."""
    drift, _ = drift_report(trained.train, window, trained.spec)
    verdict = quality(trained, window)
    found = signals(drift.summary(), verdict.as_dict())
    return Verdict(bool(found), found, drift.summary(), verdict.as_dict())
