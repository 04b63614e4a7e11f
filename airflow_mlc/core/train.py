"""Train: a scikit-learn Pipeline with an optional cross-validated search, logged to MLflow."""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from airflow_mlc.core import tracking
from airflow_mlc.core.metrics import score_model
from airflow_mlc.errors import BadInputError
from airflow_mlc.spec import ModelLifecycleSpec

#: scikit-learn scorer for each gate metric, used by the search when the spec names none.
SCORERS = {
    "mae": "neg_mean_absolute_error",
    "rmse": "neg_root_mean_squared_error",
    "r2": "r2",
    "accuracy": "accuracy",
    "precision": "precision_weighted",
    "recall": "recall_weighted",
    "f1": "f1_weighted",
    "roc_auc": "roc_auc_ovr_weighted",
}
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
    return Pipeline([("features", ColumnTransformer(transformers)), (MODEL_STEP, estimator)])


def fit(spec: ModelLifecycleSpec, train: pd.DataFrame) -> tuple[Any, dict[str, Any], float | None]:
    """Fit the pipeline (with the spec's search, if any); returns it, the best params and the CV score."""
    from sklearn.model_selection import GridSearchCV, KFold, RandomizedSearchCV, TimeSeriesSplit

    pipeline = build_pipeline(spec)
    x, y = train[spec.features.columns], train[spec.target]
    search = spec.model.search
    if search is None:
        pipeline.fit(x, y)
        return pipeline, {}, None
    space = {f"{MODEL_STEP}__{name}": values for name, values in search.space.items()}
    unknown = sorted(set(search.space) - set(pipeline.named_steps[MODEL_STEP].get_params()))
    if unknown:
        raise BadInputError(f"model.search.space: {spec.model.estimator} has no parameter(s) {unknown}")
    if spec.split.method == "time":
        folds: Any = TimeSeriesSplit(n_splits=search.cv)
    else:
        folds = KFold(n_splits=search.cv, shuffle=True, random_state=spec.split.seed)
    scoring = search.scoring or SCORERS[spec.gates.metric]
    if search.method == "grid":
        searcher: Any = GridSearchCV(pipeline, space, cv=folds, scoring=scoring)
    else:
        searcher = RandomizedSearchCV(
            pipeline, space, n_iter=search.n_iter, cv=folds, scoring=scoring, random_state=spec.split.seed
        )
    searcher.fit(x, y)
    best = {name.removeprefix(f"{MODEL_STEP}__"): value for name, value in searcher.best_params_.items()}
    cv_score = float(searcher.best_score_)
    return searcher.best_estimator_, best, -cv_score if scoring.startswith("neg_") else cv_score


def _own_types(model: Any) -> list[str]:
    """The types skops must trust to load ``model`` again: those of the estimator the spec chose."""
    skops_io = tracking.import_skops()
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
    )


def train_and_log(
    spec: ModelLifecycleSpec,
    train: pd.DataFrame,
    test: pd.DataFrame,
    target: tracking.MlflowTarget,
    run_tags: dict[str, str],
    data_uris: tuple[str, str],
) -> TrainResult:
    """Fit on ``train``, score on ``test`` and log everything to one MLflow run.

    ``run_tags`` identify the Airflow task (``mlc.dag_id``, ``mlc.run_id``, ``mlc.task_id``): a retry
    finds its finished run again (same data fingerprint) and returns it instead of training twice;
    an unfinished earlier attempt is deleted. A finished run on other data is kept (it may be
    registered) and a new run is logged beside it.
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

    model, best_params, cv_score = fit(spec, train)
    test_metrics = score_model(model, test, spec.features.columns, spec.target, spec.task)
    x_test = test[spec.features.columns]
    with mlflow.start_run(experiment_id=experiment_id, tags=run_tags) as run:
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
    )
