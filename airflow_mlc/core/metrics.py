"""Evaluation metrics: a model scored once, every metric computed from its predictions.

:func:`predict` runs the model on labelled rows and keeps what it said as :class:`Predictions`;
:func:`compute` turns them into one metric. A bootstrap computes a metric on a thousand resamples
of the same rows (:meth:`Predictions.take`), so the metrics are computed here with NumPy from class
codes and score ranks prepared once, and give scikit-learn's values:

* ``accuracy`` and ``balanced_accuracy`` as scikit-learn defines them.
* ``precision``, ``recall`` and ``f1``: of the positive class in a binary classification (scikit-learn
  with ``pos_label``); in a multi-class one, macro averages over the classes present in the true or
  the predicted labels (scikit-learn's default ``labels``). ``f1_weighted`` and ``f1_macro`` average
  over the same classes.
* ``roc_auc`` and ``pr_auc`` (average precision): in a binary classification, from the positive
  class's score; in a multi-class one, one-vs-rest values averaged over the model's classes that
  have both positive and negative rows. The scores are ``predict_proba``, else ``decision_function``.
* ``log_loss``, from ``predict_proba`` only, clipped as scikit-learn clips it; a true label the model
  does not know counts with the clipped minimum probability.
* ``rmse``, ``mae``, ``r2`` and ``mape`` of a regression.

Labels may be of any type (text, booleans, integers). Where a metric has no value on the rows, such
as an AUC of rows of one class, a precision when nothing is predicted positive (0/0) or an R² of a
constant target, :func:`compute` returns None where scikit-learn would warn and return a stand-in:
an undefined value is never taken for a measured one. No metric is ever NaN or infinite.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from airflow_mlc.errors import BadInputError, DataError
from airflow_mlc.spec import METRICS_BY_TASK, PROBABILITY_METRICS, SCORE_METRICS

#: Metrics whose binary value is of the positive class (multi-class: a macro average).
POSITIVE_CLASS_METRICS = {"precision", "recall", "f1"}


@dataclass(frozen=True)
class _Rows:
    """What the metrics read, row by row: codes of the labels, ranks of the scores.

    Classification: ``true`` and ``predicted`` are codes into ``labels`` (the model's classes, then
    labels it does not know); ``levels[:, j]`` is the dense rank of each row's score for class ``j``
    (``level_counts[j]`` distinct values); ``losses`` is each row's log loss. Regression: ``true``
    and ``predicted`` are the values.
    """

    true: np.ndarray
    predicted: np.ndarray
    labels: tuple[Any, ...] = ()
    levels: np.ndarray | None = None
    level_counts: tuple[int, ...] = ()
    losses: np.ndarray | None = None
    scores_problem: str | None = None

    def take(self, index: np.ndarray) -> _Rows:
        return replace(
            self,
            true=self.true[index],
            predicted=self.predicted[index],
            levels=None if self.levels is None else self.levels[index],
            losses=None if self.losses is None else self.losses[index],
        )


@dataclass(frozen=True, eq=False)
class Predictions:
    """A model's output on labelled rows.

    Attributes:
        task: ``"regression"`` or ``"classification"``.
        y_true: the true labels or values.
        predicted: the model's predictions (``predict``).
        scores: classification: shape ``(n, len(classes))``, columns in ``classes`` order; from
            ``predict_proba``, or ``decision_function`` when the model has no probabilities.
        probabilities: whether ``scores`` come from ``predict_proba``.
        classes: the model's full class list (``model.classes_``), in its order; default: the sorted
            labels seen in ``y_true`` and ``predicted``.
        positive: binary classification: the positive class, one of ``classes`` (matched by value or
            by text); default: the last class, whose score a binary ``decision_function`` gives.
    """

    task: str
    y_true: np.ndarray
    predicted: np.ndarray
    scores: np.ndarray | None = None
    probabilities: bool = False
    classes: tuple[Any, ...] = ()
    positive: Any = None
    _rows: _Rows = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.task not in METRICS_BY_TASK:
            raise BadInputError(f"task {self.task!r} is neither regression nor classification")
        y_true, predicted = np.asarray(self.y_true).ravel(), np.asarray(self.predicted).ravel()
        if len(y_true) != len(predicted):
            raise ValueError(f"{len(y_true)} true values but {len(predicted)} predictions")
        object.__setattr__(self, "y_true", y_true)
        object.__setattr__(self, "predicted", predicted)
        if self.task == "regression":
            object.__setattr__(self, "_rows", _regression_rows(y_true, predicted))
            return
        classes = tuple(self.classes) or sorted_labels(y_true, predicted)
        object.__setattr__(self, "classes", classes)
        if len(classes) == 2:
            at = 1 if self.positive is None else _class_position(self.positive, classes)
            if at is None:
                raise BadInputError(f"the positive class {self.positive!r} is not one of the classes {list(classes)}")
            object.__setattr__(self, "positive", classes[at])
        scores = None if self.scores is None else np.asarray(self.scores, dtype=float)
        if scores is not None and scores.shape != (len(y_true), len(classes)):
            raise ValueError(f"scores of shape {scores.shape} for {len(y_true)} rows and {len(classes)} classes")
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "_rows", _classification_rows(y_true, predicted, scores, self.probabilities, classes))

    def __len__(self) -> int:
        return len(self._rows.true)

    def take(self, index: np.ndarray) -> Predictions:
        """The rows at integer positions ``index`` (which may repeat, as a bootstrap resample does)."""
        index = np.asarray(index, dtype=np.intp)
        clone = copy.copy(self)  # no __post_init__: the codes and ranks are taken, not computed again
        object.__setattr__(clone, "y_true", self.y_true[index])
        object.__setattr__(clone, "predicted", self.predicted[index])
        object.__setattr__(clone, "scores", None if self.scores is None else self.scores[index])
        object.__setattr__(clone, "_rows", self._rows.take(index))
        return clone

    @property
    def binary(self) -> bool:
        """Whether this is a binary classification (the model knows exactly two classes)."""
        return self.task == "classification" and len(self.classes) == 2


class _Undefined(Exception):
    """The metric has no value on these rows; the message says why."""


def _regression_rows(y_true: np.ndarray, predicted: np.ndarray) -> _Rows:
    try:
        return _Rows(np.asarray(y_true, dtype=float), np.asarray(predicted, dtype=float))  # no copy of floats
    except (TypeError, ValueError):
        raise DataError(
            f"a regression needs numeric values; the target holds e.g. {y_true[:3].tolist()}, "
            f"the predictions e.g. {predicted[:3].tolist()}"
        ) from None


def sorted_labels(*arrays: Any) -> tuple[Any, ...]:
    """The distinct labels of ``arrays``, sorted as scikit-learn sorts a classifier's ``classes_``."""
    seen = pd.unique(np.concatenate([np.asarray(a, dtype=object) for a in arrays]))
    return tuple(_sorted(list(seen)))


def _sorted(values: list[Any]) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:  # labels of mixed types
        return sorted(values, key=lambda value: (type(value).__name__, str(value)))


def _class_position(value: Any, classes: Sequence[Any]) -> int | None:
    """Where ``value`` is in ``classes``: an equal class, else one written the same (``1`` and ``"1"``)."""
    for position, known in enumerate(classes):
        if _equal(value, known):
            return position
    text = str(value)
    for position, known in enumerate(classes):
        if str(known) == text:
            return position
    return None


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def _encode(values: np.ndarray, labels: list[Any]) -> np.ndarray:
    """Codes of ``values`` in ``labels``; a value matching no label is appended to ``labels``."""
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    mapping = np.empty(len(uniques), dtype=np.intp)
    for i, value in enumerate(np.asarray(uniques, dtype=object)):
        position = _class_position(value, labels)
        if position is None:
            labels.append(value)
            position = len(labels) - 1
        mapping[i] = position
    return mapping[codes] if len(codes) else np.zeros(0, dtype=np.intp)


def _classification_rows(
    y_true: np.ndarray, predicted: np.ndarray, scores: np.ndarray | None, probabilities: bool, classes: tuple[Any, ...]
) -> _Rows:
    labels = list(classes)
    true, guessed = _encode(y_true, labels), _encode(predicted, labels)
    if scores is None:
        return _Rows(true, guessed, tuple(labels), scores_problem="the model gives no scores")
    if not np.isfinite(scores).all():
        return _Rows(true, guessed, tuple(labels), scores_problem="the model's scores hold NaN or infinite values")
    levels = np.empty(scores.shape, dtype=np.intp)
    counts = []
    for column in range(scores.shape[1]):
        distinct, levels[:, column] = np.unique(scores[:, column], return_inverse=True)
        counts.append(len(distinct))
    losses = None
    if probabilities:
        eps = np.finfo(np.float64).eps
        known = true < len(classes)
        chosen = np.zeros(len(true))
        chosen[known] = scores[np.flatnonzero(known), true[known]]
        losses = -np.log(np.clip(chosen, eps, 1 - eps))
    return _Rows(true, guessed, tuple(labels), levels, tuple(counts), losses)


def model_features(model: Any, features: Sequence[str]) -> list[str]:
    """The columns ``model`` reads: those it was fitted on (``feature_names_in_``), else ``features``."""
    names = getattr(model, "feature_names_in_", None)
    return [str(name) for name in names] if names is not None else list(features)


def predict(
    model: Any, frame: pd.DataFrame, features: list[str], target: str, task: str, positive_class: Any = None
) -> Predictions:
    """Run a fitted model on labelled rows and keep what it says, for :func:`compute`.

    Args:
        model: a fitted scikit-learn estimator or pipeline.
        frame: the rows, with the feature columns and the target.
        features: the spec's features; the model's own (``feature_names_in_``) take precedence.
        target: the target column; every row must have a label.
        task: ``"regression"`` or ``"classification"``.
        positive_class: binary classification: the positive class (matched to one of the model's
            classes by value or by text); default: the minority class of the rows.

    Returns:
        The predictions, with the scores and the model's classes of a classification.

    Raises:
        DataError: a feature the model needs or the target is missing, or a row has no label.
    """
    return predict_chunks(model, [frame], features, target, task, positive_class)


def predict_chunks(
    model: Any,
    chunks: Iterable[pd.DataFrame],
    features: list[str],
    target: str,
    task: str,
    positive_class: Any = None,
) -> Predictions:
    """:func:`predict` on rows that come a chunk at a time: only one chunk's rows are in memory with the outputs.

    The chunks must have the same columns. The result is the one :func:`predict` gives on all the rows at
    once: the positive class by default is the minority class of all of them.
    """
    needed = model_features(model, features)
    known = getattr(model, "classes_", None)
    classes = tuple(np.asarray(known).tolist()) if known is not None else None
    truths, outputs, scored = [], [], []  # scored: (scores, from predict_proba) of each chunk with rows
    for frame in chunks:
        y_true, predicted, scores, from_proba = _predict_chunk(model, frame, needed, target, task, classes)
        truths.append(y_true)
        outputs.append(predicted)
        if len(y_true):
            scored.append((scores, from_proba))
    if not truths:
        raise ValueError("predict_chunks needs at least one chunk, even an empty one")
    y_true, predicted = np.concatenate(truths), np.concatenate(outputs)
    if task == "regression":
        return Predictions(task, y_true, predicted)
    scores, probabilities = None, False
    if scored and all(chunk_scores is not None for chunk_scores, _ in scored):
        scores = np.concatenate([chunk_scores for chunk_scores, _ in scored])
        probabilities = all(from_proba for _, from_proba in scored)
    classes = classes if classes is not None else sorted_labels(y_true, predicted)
    positive = resolve_positive_class(y_true, classes, positive_class)
    return Predictions(task, y_true, predicted, scores, probabilities, classes, positive)


def _predict_chunk(
    model: Any, frame: pd.DataFrame, needed: list[str], target: str, task: str, classes: tuple[Any, ...] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, bool]:
    """One chunk's labels, predictions and class scores (None when the model has none)."""
    missing = [column for column in needed if column not in frame.columns]
    if missing:
        raise DataError(
            f"columns {missing} are missing: the model needs them as features (columns present: {list(frame.columns)})"
        )
    if target not in frame.columns:
        raise DataError(f"the target column {target!r} is missing (columns present: {list(frame.columns)})")
    unlabelled = int(frame[target].isna().sum())
    if unlabelled:
        raise DataError(f"target {target!r} is missing on {unlabelled} of {len(frame)} rows; score labelled rows only")
    y_true = frame[target].to_numpy()
    x = frame[needed]
    if task == "regression":
        return y_true, np.asarray(model.predict(x), dtype=float) if len(x) else np.zeros(0), None, False
    if not len(x):
        return y_true, np.asarray(classes if classes is not None else [])[:0], None, False
    predicted = np.asarray(model.predict(x)).ravel()
    count = len(classes) if classes is not None else len(sorted_labels(y_true, predicted))
    scores, probabilities = _scores(model, x, count)
    return y_true, predicted, scores, probabilities


def _scores(model: Any, x: pd.DataFrame, classes: int) -> tuple[np.ndarray | None, bool]:
    """``predict_proba``, else ``decision_function`` laid out as one column per class."""
    if not len(x):
        return None, False
    if hasattr(model, "predict_proba"):
        values, probabilities = np.asarray(model.predict_proba(x), dtype=float), True
    elif hasattr(model, "decision_function"):
        values, probabilities = np.asarray(model.decision_function(x), dtype=float), False
        if values.ndim == 1:  # a binary model's decision function scores classes_[1]
            values = np.column_stack([-values, values])
    else:
        return None, False
    if values.shape != (len(x), classes):
        return None, False
    return values, probabilities


def resolve_positive_class(y: Any, classes: Sequence[Any], configured: Any = None) -> Any:
    """The positive class of a binary classification; None when there are not exactly two classes.

    Args:
        y: the labels the default is chosen from.
        classes: the model's classes.
        configured: the positive class asked for (the spec's ``positive_class``, or the one recorded
            with a model), matched to a class by value or by text.

    Returns:
        The element of ``classes`` that is positive: ``configured``, else the minority class of ``y``
        (on a tie, the last in sorted order).

    Raises:
        BadInputError: ``configured`` is none of ``classes``.
    """
    classes = tuple(classes)
    if len(classes) != 2:
        return None
    if configured is not None:
        at = _class_position(configured, classes)
        if at is None:
            raise BadInputError(f"positive_class {configured!r} is not one of the classes {list(classes)}")
        return classes[at]
    codes = _encode(np.asarray(y).ravel(), list(classes))
    counts = np.bincount(codes, minlength=2)[:2]
    order = [classes.index(value) for value in _sorted(list(classes))]
    fewest = min(counts)
    return classes[[at for at in order if counts[at] == fewest][-1]]


def _estimator_name(model: Any) -> str:
    """The estimator's import path (a pipeline's last step), without private modules."""
    steps = getattr(model, "steps", None)
    estimator = steps[-1][1] if steps else model
    kind = type(estimator)
    public = []
    for part in kind.__module__.split("."):
        if part.startswith("_"):
            break
        public.append(part)
    return ".".join([*public, kind.__qualname__])


def gate_metric_available(name: str, model: Any) -> str | None:
    """Whether ``model`` can give the metric ``name``: None if it can, else why not."""
    if name in PROBABILITY_METRICS and not hasattr(model, "predict_proba"):
        return f"{name} needs predict_proba; {_estimator_name(model)} does not give it"
    if name in SCORE_METRICS and not (hasattr(model, "predict_proba") or hasattr(model, "decision_function")):
        return f"{name} needs predict_proba or decision_function; {_estimator_name(model)} gives neither"
    return None


def compute(name: str, predictions: Predictions) -> float | None:
    """The metric ``name`` on ``predictions``; None when it is undefined on these rows (never NaN or inf).

    Raises:
        BadInputError: ``name`` is not a metric of the predictions' task.
    """
    try:
        return _value(name, predictions)
    except _Undefined:
        return None


def why_undefined(name: str, predictions: Predictions) -> str | None:
    """Why the metric ``name`` has no value on ``predictions``; None when it has one."""
    try:
        _value(name, predictions)
    except _Undefined as exc:
        return str(exc)
    return None


def compute_all(predictions: Predictions) -> dict[str, float]:
    """Every metric of the task that is defined on ``predictions``."""
    found = {}
    for name in METRICS_BY_TASK[predictions.task]:
        value = compute(name, predictions)
        if value is not None:
            found[name] = value
    return found


def score_model(
    model: Any, frame: pd.DataFrame, features: list[str], target: str, task: str, positive_class: Any = None
) -> dict[str, float]:
    """Every defined metric of a fitted model on the labelled rows of ``frame``: ``compute_all(predict(...))``."""
    return compute_all(predict(model, frame, features, target, task, positive_class))


def _value(name: str, predictions: Predictions) -> float:
    metrics = METRICS_BY_TASK[predictions.task]
    if name not in metrics:
        raise BadInputError(f"{name!r} is not a {predictions.task} metric (one of: {', '.join(sorted(metrics))})")
    if not len(predictions):
        raise _Undefined("there are no rows")
    if predictions.task == "regression":
        value = _regression(name, predictions._rows)
    elif name in ("roc_auc", "pr_auc"):
        value = _ranking(name, predictions)
    elif name == "log_loss":
        losses = predictions._rows.losses
        if losses is None:
            raise _Undefined("log_loss needs probabilities (predict_proba), which the model does not give")
        value = float(np.mean(losses))
    else:
        value = _from_confusion(name, predictions)
    if not math.isfinite(value):
        raise _Undefined(f"{name} is not finite ({value}) on these rows")
    return value


def _regression(name: str, rows: _Rows) -> float:
    errors = rows.predicted - rows.true
    if name == "rmse":
        return float(np.sqrt(np.mean(errors**2)))
    if name == "mae":
        return float(np.mean(np.abs(errors)))
    if name == "mape":
        return float(np.mean(np.abs(errors) / np.maximum(np.abs(rows.true), np.finfo(np.float64).eps)))
    if len(rows.true) < 2:
        raise _Undefined("r2 needs at least two rows")
    spread = float(np.sum((rows.true - np.mean(rows.true)) ** 2))
    if spread == 0:
        raise _Undefined(f"r2 is undefined: the target is constant ({rows.true[0]:g}) on these rows")
    return 1 - float(np.sum(errors**2)) / spread


def _from_confusion(name: str, predictions: Predictions) -> float:
    rows = predictions._rows
    size = len(rows.labels)
    matrix = np.bincount(rows.true * size + rows.predicted, minlength=size * size).reshape(size, size)
    hits, true_sum, predicted_sum = np.diagonal(matrix), matrix.sum(axis=1), matrix.sum(axis=0)
    if name == "accuracy":
        return float(hits.sum() / len(rows.true))
    if name == "balanced_accuracy":
        present = true_sum > 0
        return float(np.mean(hits[present] / true_sum[present]))
    if predictions.binary and name in POSITIVE_CLASS_METRICS:
        return _of_positive(name, predictions, hits, true_sum, predicted_sum)
    # Averaged over the classes the rows hold (scikit-learn with labels=unique(y_true)): a class a window
    # lacks would add an F1 of 0 for the few rows predicted as it, a drop no class present shows.
    present = true_sum > 0
    hits, true_sum, predicted_sum = hits[present], true_sum[present], predicted_sum[present]
    if name == "precision":
        return float(np.mean(_ratio(hits, predicted_sum)))
    if name == "recall":
        return float(np.mean(_ratio(hits, true_sum)))
    f1 = _ratio(2 * hits, true_sum + predicted_sum)
    if name == "f1_weighted":
        return float(np.sum(f1 * true_sum) / np.sum(true_sum))
    return float(np.mean(f1))  # f1_macro, and f1 of a multi-class classification


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Class by class, with 0 where the denominator is 0 (scikit-learn's ``zero_division``)."""
    out = np.zeros(len(numerator))
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _of_positive(
    name: str, predictions: Predictions, hits: np.ndarray, true_sum: np.ndarray, predicted_sum: np.ndarray
) -> float:
    at = predictions.classes.index(predictions.positive)
    positive = predictions.positive
    if name == "precision":
        if not predicted_sum[at]:
            raise _Undefined(f"precision is undefined: the model predicts no row as the positive class {positive!r}")
        return float(hits[at] / predicted_sum[at])
    if name == "recall":
        if not true_sum[at]:
            raise _Undefined(f"recall is undefined: no row is of the positive class {positive!r}")
        return float(hits[at] / true_sum[at])
    if not true_sum[at] + predicted_sum[at]:
        raise _Undefined(f"f1 is undefined: neither the rows nor the predictions hold the positive class {positive!r}")
    return float(2 * hits[at] / (true_sum[at] + predicted_sum[at]))


def _ranking(name: str, predictions: Predictions) -> float:
    rows = predictions._rows
    if rows.levels is None:
        raise _Undefined(f"{name} needs the model's scores (predict_proba or decision_function): {rows.scores_problem}")
    measure = _auc if name == "roc_auc" else _average_precision
    total = len(rows.true)
    if predictions.binary:
        at = predictions.classes.index(predictions.positive)
        relevant = rows.true == at
        positives = int(relevant.sum())
        if positives in (0, total):
            which = "no row is" if positives == 0 else "every row is"
            raise _Undefined(f"{name} needs rows of both sides: {which} of the positive class {predictions.positive!r}")
        return measure(rows.levels[:, at], relevant, rows.level_counts[at], positives, total - positives)
    counts = np.bincount(rows.true, minlength=len(rows.labels))
    values = []
    for at in range(len(predictions.classes)):
        if 0 < counts[at] < total:
            relevant = rows.true == at
            positives = int(counts[at])
            values.append(measure(rows.levels[:, at], relevant, rows.level_counts[at], positives, total - positives))
    if not values:
        present = [rows.labels[code] for code in np.flatnonzero(counts)]
        raise _Undefined(f"{name} needs a class of the model with both positive and negative rows (present: {present})")
    return float(np.mean(values))


def _auc(levels: np.ndarray, relevant: np.ndarray, size: int, positives: int, negatives: int) -> float:
    """The area under the ROC curve: the chance that a positive row outranks a negative one (ties: half)."""
    every = np.bincount(levels, minlength=size)
    hits = np.bincount(levels[relevant], minlength=size)
    misses = every - hits
    below = np.cumsum(misses) - misses
    return float((2 * int(hits @ below) + int(hits @ misses)) / (2 * positives * negatives))


def _average_precision(levels: np.ndarray, relevant: np.ndarray, size: int, positives: int, negatives: int) -> float:
    """scikit-learn's average precision: the precision at each distinct score, weighted by the recall it adds."""
    del negatives  # the same signature as _auc
    every = np.bincount(levels, minlength=size)[::-1]
    hits = np.bincount(levels[relevant], minlength=size)[::-1]
    seen, found = np.cumsum(every), np.cumsum(hits)
    at = hits > 0
    return float(np.sum(hits[at] * found[at] / seen[at]) / positives)
