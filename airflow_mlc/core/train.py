"""Train: a scikit-learn Pipeline with an optional cross-validated search, logged to MLflow."""

from __future__ import annotations

import importlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from airflow_mlc.core import tracking
from airflow_mlc.core.metrics import (
    Predictions,
    compute,
    compute_all,
    gate_metric_available,
    predict,
    resolve_positive_class,
    sorted_labels,
    why_undefined,
)
from airflow_mlc.core.skops_import import import_skops
from airflow_mlc.errors import BadInputError
from airflow_mlc.spec import LOWER_IS_BETTER, PROBABILITY_METRICS, SCORE_METRICS, ModelLifecycleSpec

MODEL_STEP = "model"


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    experiment_id: str
    model_uri: str
    best_params: dict[str, Any]
    cv_score: float | None
    test_metrics: dict[str, float]
    reused: bool = False
    classes: list[str] = field(default_factory=list)
    positive_class: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_estimator_class(path: str) -> type:
    """The estimator class named by an import path such as ``sklearn.linear_model.Ridge``."""
    module_name, _, class_name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise BadInputError(f"model.estimator {path!r}: cannot import module {module_name!r}") from None
    estimator = getattr(module, class_name, None)
    if not isinstance(estimator, type) or not hasattr(estimator, "fit"):
        raise BadInputError(f"model.estimator {path!r}: {module_name} has no estimator class {class_name!r}")
    return estimator


def build_pipeline(spec: ModelLifecycleSpec) -> Any:
    """Impute and scale numeric features, impute and one-hot encode categorical ones, then the estimator."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    transformers = []
    if spec.features.numeric:
        numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
        transformers.append(("numeric", numeric, spec.features.numeric))
    if spec.features.categorical:
        categorical = Pipeline(
            [
                ("impute", SimpleImputer(strategy="most_frequent")),
                ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]
        )
        transformers.append(("categorical", categorical, spec.features.categorical))
    estimator_class = load_estimator_class(spec.model.estimator)
    try:
        estimator = estimator_class(**spec.model.params)
    except TypeError as exc:
        raise BadInputError(f"model.params for {spec.model.estimator}: {exc}") from None
    _check_params(spec, estimator, spec.model.params, "model.params")
    return Pipeline([("features", ColumnTransformer(transformers)), (MODEL_STEP, estimator)])


def _check_params(spec: ModelLifecycleSpec, estimator: Any, params: dict[str, Any], where: str) -> None:
    """Fail at once, naming the parameter and its value, when the estimator rejects a value of ``params``.

    scikit-learn checks the values of an estimator's parameters only when it is fitted, and a
    search scores a candidate it cannot fit as NaN instead of failing; an invalid value never
    becomes valid on a retry.
    """
    validate = getattr(estimator, "_validate_params", None)
    if validate is None:  # not a scikit-learn estimator: its fit will tell
        return
    try:
        validate()
    except (TypeError, ValueError) as exc:
        found = re.search(r"The '(\w+)' parameter", str(exc))
        name = found.group(1) if found and found.group(1) in params else None
        rejected = f"{name}={params[name]!r}" if name else "its parameters"
        raise BadInputError(f"{where}: {spec.model.estimator} rejects {rejected}: {exc}") from None


def _check_space(spec: ModelLifecycleSpec, estimator: Any) -> None:
    """Every value of the search space, each with the spec's other parameters, must be valid."""
    assert spec.model.search is not None
    space = spec.model.search.space
    unknown = sorted(set(space) - set(estimator.get_params()))
    if unknown:
        raise BadInputError(f"model.search.space: {spec.model.estimator} has no parameter(s) {unknown}")
    for name, values in space.items():
        for value in values:
            candidate = type(estimator)(**{**estimator.get_params(deep=False), name: value})
            _check_params(spec, candidate, {name: value}, f"model.search.space.{name}")


def training_classes(spec: ModelLifecycleSpec, train: pd.DataFrame) -> tuple[tuple[Any, ...], Any]:
    """The classes of the training rows (sorted, as the model will know them) and the positive class.

    The positive class of a binary classification is the spec's ``positive_class`` (matched by value
    or by text), else the minority class of the training rows; None otherwise. A regression has no
    classes.

    Raises:
        BadInputError: ``positive_class`` is not one of the training labels, or there are not two of them.
    """
    if spec.task != "classification":
        return (), None
    labels = train[spec.target].dropna().to_numpy()
    classes = sorted_labels(labels)
    configured = spec.positive_class
    if configured is not None and len(classes) != 2:
        raise BadInputError(
            f"{spec.origin}: positive_class {configured!r} applies to a binary classification, but the "
            f"training rows hold {len(classes)} classes: {list(classes)}"
        )
    try:
        return classes, resolve_positive_class(labels, classes, configured)
    except BadInputError:
        raise BadInputError(
            f"{spec.origin}: positive_class {configured!r} is not one of the training labels {list(classes)}"
        ) from None


def _folds(spec: ModelLifecycleSpec, splits: int) -> Any:
    """Time-ordered folds for a time split; folds keeping each class's share for a stratified random split."""
    from sklearn.model_selection import KFold, StratifiedKFold, TimeSeriesSplit

    if spec.split.method == "time":
        return TimeSeriesSplit(n_splits=splits)
    if spec.task == "classification" and spec.split.stratify:
        return StratifiedKFold(n_splits=splits, shuffle=True, random_state=spec.split.seed)
    return KFold(n_splits=splits, shuffle=True, random_state=spec.split.seed)


def _search_metric(
    y_true: Any, y_pred: Any, *, metric: str, task: str, classes: tuple[Any, ...] = (), pos_label: Any = None
) -> float:
    """The gate metric on one fold, from what the scorer got: predictions, or scores (see :func:`gate_scorer`).

    A binary model's scores arrive as one column, the positive class's (scikit-learn's scorer picks it
    by ``pos_label``): the other class's column is laid out beside it. A metric undefined on the
    fold, or scores of a model that missed a class in the fold's training rows, give NaN, which the
    search ranks last.
    """
    y_true = np.asarray(y_true)
    if task == "regression":
        value = compute(metric, Predictions(task, y_true, np.asarray(y_pred)))
        return float("nan") if value is None else value
    if metric not in SCORE_METRICS:
        value = compute(metric, Predictions(task, y_true, np.asarray(y_pred), classes=classes, positive=pos_label))
        return float("nan") if value is None else value
    scores = np.asarray(y_pred, dtype=float)
    probabilities = metric in PROBABILITY_METRICS
    if scores.ndim == 1 and len(classes) == 2:
        at = classes.index(pos_label)
        layout = np.empty((len(scores), 2))
        layout[:, at], layout[:, 1 - at] = scores, (1 - scores) if probabilities else -scores
        scores = layout
    if scores.ndim != 2 or scores.shape[1] != len(classes):
        return float("nan")
    predicted = np.asarray(classes, dtype=object)[scores.argmax(axis=1)]
    value = compute(metric, Predictions(task, y_true, predicted, scores, probabilities, classes, pos_label))
    return float("nan") if value is None else value


def gate_scorer(spec: ModelLifecycleSpec, classes: tuple[Any, ...], positive: Any) -> Any:
    """The gate metric as a scikit-learn scorer, computed as the evaluation computes it.

    The labels may be of any type and a binary metric is of ``positive``; ranking metrics score
    ``predict_proba`` (else ``decision_function``), ``log_loss`` only ``predict_proba``.
    """
    from sklearn.metrics import make_scorer

    metric = spec.gates.metric
    response: Any = "predict"
    if metric in PROBABILITY_METRICS:
        response = "predict_proba"
    elif metric in SCORE_METRICS:
        response = ("predict_proba", "decision_function")
    options: dict[str, Any] = {"metric": metric, "task": spec.task}
    if spec.task == "classification":
        options.update(classes=classes, pos_label=positive)
    return make_scorer(
        _search_metric, response_method=response, greater_is_better=metric not in LOWER_IS_BETTER, **options
    )


def fit(spec: ModelLifecycleSpec, train: pd.DataFrame, threads: int = 1) -> tuple[Any, dict[str, Any], float | None]:
    """Fit the pipeline (with the spec's search, if any); returns it, the best params and the CV score.

    The search scores the gate metric (as the evaluation computes it, of the positive class) unless
    ``search.scoring`` names a scikit-learn scorer. The CV score is None when no candidate had one.

    The search fits its candidates one after the other (``n_jobs=1``), so the cores go to the fit
    itself: its native (OpenMP, BLAS) threads, which the caller limits, and ``threads`` joblib worker
    threads for a step whose ``n_jobs`` is unset. An ``n_jobs`` in ``model.params`` is kept.

    Raises:
        BadInputError: an invalid parameter value (named with the estimator), or the fit failed on
            these rows (as it would again).
    """
    from joblib import parallel_config
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

    pipeline = build_pipeline(spec)
    classes, positive = training_classes(spec, train)
    x, y = train[spec.features.columns], train[spec.target]
    search = spec.model.search
    if search is None:
        with parallel_config(n_jobs=threads, prefer="threads"):
            _fit(spec, pipeline, x, y)
        return pipeline, {}, None
    _check_space(spec, pipeline.named_steps[MODEL_STEP])
    space = {f"{MODEL_STEP}__{name}": values for name, values in search.space.items()}
    scoring = search.scoring or gate_scorer(spec, classes, positive)
    folds = _folds(spec, search.cv)
    if search.method == "grid":
        searcher: Any = GridSearchCV(pipeline, space, cv=folds, scoring=scoring, n_jobs=1)
    else:
        searcher = RandomizedSearchCV(
            pipeline, space, n_iter=search.n_iter, cv=folds, scoring=scoring, random_state=spec.split.seed, n_jobs=1
        )
    with parallel_config(n_jobs=threads, prefer="threads"):
        _fit(spec, searcher, x, y)
    best = {name.removeprefix(f"{MODEL_STEP}__"): value for name, value in searcher.best_params_.items()}
    cv_score = float(searcher.best_score_)
    lower_is_better = search.scoring.startswith("neg_") if search.scoring else spec.gates.metric in LOWER_IS_BETTER
    cv_score = -cv_score if lower_is_better else cv_score
    return searcher.best_estimator_, best, cv_score if math.isfinite(cv_score) else None


def _fit(spec: ModelLifecycleSpec, estimator: Any, x: pd.DataFrame, y: pd.Series) -> None:
    """Fit; a ValueError of the fit (invalid values, too few rows of a class) is bad input: it would recur."""
    try:
        estimator.fit(x, y)
    except ValueError as exc:
        raise BadInputError(f"fitting {spec.model.estimator} on {len(x)} training rows failed: {exc}") from None


def _own_types(model: Any) -> list[str]:
    """The types skops must trust to load ``model`` again: those of the estimator the spec chose."""
    skops_io = import_skops()
    return list(skops_io.get_untrusted_types(data=skops_io.dumps(model)))


def _result_from_run(run: Any) -> TrainResult:
    data = run.data
    return TrainResult(
        run_id=run.info.run_id,
        experiment_id=run.info.experiment_id,
        model_uri=data.tags[tracking.TAG_MODEL_URI],
        best_params={k.removeprefix("best."): v for k, v in data.params.items() if k.startswith("best.")},
        cv_score=data.metrics.get("cv_score"),
        test_metrics={k.removeprefix("test_"): v for k, v in data.metrics.items() if k.startswith("test_")},
        reused=True,
        classes=json.loads(data.tags.get(tracking.TAG_CLASSES, "[]")),
        positive_class=data.tags.get(tracking.TAG_POSITIVE_CLASS),
    )


def train_and_log(
    spec: ModelLifecycleSpec,
    train: pd.DataFrame,
    test: pd.DataFrame,
    target: tracking.MlflowTarget,
    run_tags: dict[str, str],
    data_uris: tuple[str, str],
    threads: int = 1,
) -> TrainResult:
    """Fit on ``train``, score on ``test`` and log everything to one MLflow run.

    ``run_tags`` identify the Airflow task (``mlc.dag_id``, ``mlc.run_id``, ``mlc.task_id``): a retry
    finds its finished run again (same data fingerprint) and returns it instead of training twice;
    an unfinished earlier attempt is deleted. A finished run on other data is kept (it may be
    registered) and a new run is logged beside it.

    A classification's run records the model's classes and its positive class (binary) as tags; the
    test metrics are of that positive class. ``threads`` is what the fit may use (see :func:`fit`).

    Raises:
        BadInputError: before any run is created, when the parameters are invalid, the positive class
            is not a training label, the model cannot give the gate metric (``log_loss`` without
            ``predict_proba``), or the gate metric is undefined on the test rows.
    """
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.models import infer_signature

    client = target.activate()
    experiment_id = tracking.ensure_experiment(client, spec.experiment_name, target.artifact_location)
    key = {k: run_tags[k] for k in (tracking.TAG_DAG_ID, tracking.TAG_RUN_ID, tracking.TAG_TASK_ID)}
    for run in tracking.find_runs(client, experiment_id, key):
        same_data = run.data.tags.get(tracking.TAG_FINGERPRINT) == run_tags.get(tracking.TAG_FINGERPRINT)
        finished = run.info.status == "FINISHED" and tracking.TAG_MODEL_URI in run.data.tags
        if finished and same_data:
            return _result_from_run(run)
        if not finished:
            client.delete_run(run.info.run_id)

    _, positive = training_classes(spec, train)
    model, best_params, cv_score = fit(spec, train, threads)
    metric = spec.gates.metric
    unavailable = gate_metric_available(metric, model)
    if unavailable:
        raise BadInputError(f"gates.metric {metric!r} cannot be computed for this model: {unavailable}")
    predictions = predict(model, test, spec.features.columns, spec.target, spec.task, positive)
    test_metrics = compute_all(predictions)
    if metric not in test_metrics:
        reason = why_undefined(metric, predictions)
        raise BadInputError(f"gates.metric {metric!r} has no value on the {len(test)} test rows: {reason}")
    classes = [str(label) for label in predictions.classes] if spec.task == "classification" else []
    positive_class = None if predictions.positive is None else str(predictions.positive)
    tags = dict(run_tags)
    if classes:
        tags[tracking.TAG_CLASSES] = json.dumps(classes)
    if positive_class is not None:
        tags[tracking.TAG_POSITIVE_CLASS] = positive_class
    x_test = test[spec.features.columns]
    from airflow_mlc.core.registry import readable_window

    window = readable_window(tags.get(tracking.TAG_WINDOW_START), tags.get(tracking.TAG_WINDOW_END))
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"train {window}", tags=tags) as run:
        mlflow.log_params(
            {"estimator": spec.model.estimator, **{f"param.{k}": v for k, v in spec.model.params.items()}}
        )
        mlflow.log_params({f"best.{k}": v for k, v in best_params.items()})
        if cv_score is not None:
            mlflow.log_metric("cv_score", cv_score)
        mlflow.log_metrics({f"test_{k}": v for k, v in test_metrics.items()})
        for frame, uri, context in ((train, data_uris[0], "training"), (test, data_uris[1], "testing")):
            dataset = from_pandas(frame, source=uri, targets=spec.target, name=f"{spec.name}-{context}")
            mlflow.log_input(dataset, context=context)
        signature = infer_signature(x_test.head(100), model.predict(x_test.head(100)))
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            input_example=x_test.head(5),
            skops_trusted_types=_own_types(model),
            # the flavour's pinned defaults: inferring them costs a subprocess of several seconds
            pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_skops=True),
        )
        mlflow.set_tag(tracking.TAG_MODEL_URI, info.model_uri)
    return TrainResult(
        run_id=run.info.run_id,
        experiment_id=experiment_id,
        model_uri=info.model_uri,
        best_params=best_params,
        cv_score=cv_score,
        test_metrics=test_metrics,
        classes=classes,
        positive_class=positive_class,
    )
