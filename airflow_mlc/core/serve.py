"""Batch inference as the prediction DAG runs it: which version serves, where its outputs go, its MLflow run.

The scoring itself is ``core.predict.predict_window``; how a challenger is exposed beside the served
version is ``core.rollout.challenger_exposure``. :func:`serve_window` ties them together for one interval.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from airflow_mlc.core import tracking
from airflow_mlc.core.predict import (
    CHAMPION_ROLE,
    PINNED_ROLE,
    ROLE,
    PredictionStats,
    Sink,
    predict_window,
)
from airflow_mlc.core.storage import Storage, remove, safe_part
from airflow_mlc.errors import BadInputError
from airflow_mlc.spec import ModelLifecycleSpec


def version_to_serve(client: Any, spec: ModelLifecycleSpec, pinned: str | None) -> tuple[str, str]:
    """The version that serves and its role: ``pinned`` (else the spec's pin) checked to exist, else the champion.

    Raises:
        BadInputError: The pinned version does not exist, or nothing is pinned and there is no champion.
    """
    from mlflow.exceptions import MlflowException

    from airflow_mlc.core.registry import CHAMPION, version_by_alias

    name = spec.registered_model_name
    pinned = pinned or spec.prediction.model_version
    if not pinned:
        champion = version_by_alias(client, name, CHAMPION)
        if champion is None:
            raise BadInputError(f"no champion to score with: model {name!r} has no '{CHAMPION}' version")
        return str(champion.version), CHAMPION_ROLE
    try:
        return str(client.get_model_version(name, str(pinned)).version), PINNED_ROLE
    except MlflowException:
        raise BadInputError(f"model {name!r} has no version {pinned!r} to score with") from None


@dataclass(frozen=True)
class ServedWindow:
    """What one interval's batch inference wrote (the prediction task's XCom, see ``BatchPredictOperator``)."""

    uri: str
    version: str
    bounds: dict[str, str | None]
    stats: PredictionStats
    table: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "rows": self.stats.rows,
            "model_version": self.version,
            "window": self.bounds,
            "stats": self.stats.as_dict(),
            "table": self.table,
            "shadow": self.stats.shadow,
            "canary": self.stats.canary,
        }


def serve_window(
    client: Any,
    spec: ModelLifecycleSpec,
    storage: Storage,
    bounds: dict[str, str | None],
    chunks: Iterable[pd.DataFrame],
    served: tuple[str, str],
    airflow_run_id: str,
    sink: Sink | None = None,
    log: Any = None,
) -> ServedWindow:
    """Score an interval's chunks with the ``served`` (version, role) and write them; the challenger as exposed.

    The predictions go to ``<name>/predictions/interval=<end>/predictions.parquet`` (and ``sink``); a
    shadow's to ``<name>/shadow-predictions/...``, outside that folder, and an old shadow file of the
    interval is removed when nothing is shadowed any more.
    """
    from airflow_mlc.core.rollout import challenger_exposure

    settings, (version, role) = spec.prediction, served
    keep_columns = settings.keep_columns
    if keep_columns is None:
        keep_columns = [spec.source.time_column] if spec.source.time_column else []
    interval = f"interval={safe_part(str(bounds['end']))}"
    out_uri = storage.uri(spec.name, "predictions", interval, "predictions.parquet")
    # beside the predictions, not among them: a reader of the predictions folder never sees a shadow row
    shadow_uri = storage.uri(spec.name, "shadow-predictions", interval, "shadow.parquet")
    model = tracking.load_model(f"models:/{spec.registered_model_name}/{version}", flavor="pyfunc")
    shadow, canary, exposure = challenger_exposure(client, spec, version, shadow_uri)
    if exposure and log is not None:
        log.info("%s", exposure)
    extra_columns = {
        "model_version": version,
        ROLE: role,
        "run_id": airflow_run_id,
        "window_start": bounds["start"] or "",
        "window_end": str(bounds["end"]),
    }
    stats = predict_window(
        model,
        chunks,
        spec.features.columns,
        keep_columns,
        out_uri,
        storage.options,
        extra_columns,
        spec.task,
        sink,
        shadow,
        canary,
    )
    if shadow is None:  # an earlier run's shadow predictions of this interval no longer describe it
        remove(shadow_uri, storage.options)
    return ServedWindow(out_uri, version, bounds, stats, settings.table)


def record_prediction_run(
    client: Any, spec: ModelLifecycleSpec, artifact_location: str | None, run_key: dict[str, str], served: ServedWindow
) -> tuple[str, str]:
    """Log the interval's stats to its prediction run (``<experiment>/predictions``); returns (experiment, run) ids.

    ``run_key`` (the Airflow DAG and run) finds the run again, so a retry logs to the same one. The run is
    named after its window: ``predict 2011-04-01 .. 2011-04-08``.
    """
    bounds = served.bounds
    experiment_id = tracking.ensure_experiment(client, f"{spec.experiment_name}/predictions", artifact_location)
    key = {**run_key, tracking.TAG_KIND: tracking.KIND_PREDICTION, tracking.TAG_MODEL: spec.name}
    tags = {
        tracking.TAG_WINDOW_START: bounds["start"] or "",
        tracking.TAG_WINDOW_END: bounds["end"] or "",
        tracking.TAG_MODEL_VERSION: served.version,
        tracking.TAG_PREDICTIONS_URI: served.uri,
    }
    run_id = tracking.get_or_create_run(client, experiment_id, key, tags, run_name=prediction_run_name(bounds))
    client.log_batch(run_id, metrics=tracking.metric_entities(served.stats.metrics()))
    return experiment_id, run_id


def prediction_run_name(bounds: dict[str, str | None]) -> str:
    """The prediction run's name, after its window: ``predict 2011-04-01 .. 2011-04-08``."""
    from airflow_mlc.core.registry import readable_time

    start, end = readable_time(bounds["start"]), readable_time(bounds["end"])
    return f"predict {start} .. {end}" if start else f"predict up to {end}"
