"""The checks the sensors wait on: a model version, a drift verdict (rows in a window: ``core.sources``).

Each check is one cheap look at the world (a ``COUNT(*)``, a registry lookup, a run search) that the
sensors repeat until it comes out true.
"""

from __future__ import annotations

from typing import Any

from airflow_mlc.core import registry, tracking
from airflow_mlc.core.window import parse_moment


def alias_version(client: Any, model: str, alias: str) -> str | None:
    """The version number ``alias`` points at, or None (also when the model is not registered)."""
    version = registry.version_by_alias(client, model, alias)
    return str(version.version) if version is not None else None


def newest_version(client: Any, model: str) -> str | None:
    """The highest version number of the registered model, or None when it has no version."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name = '{model}'")
    except MlflowException:
        return None
    return str(max(int(v.version) for v in versions)) if versions else None


def newest_drift(client: Any, experiment_name: str, model: str, since: str | None = None) -> dict[str, Any] | None:
    """The drift verdict of the newest monitoring run of ``model``, or None when there is none.

    Args:
        client: An ``MlflowClient``.
        experiment_name: The monitoring experiment.
        model: The spec's model name (the runs' ``mlc.model`` tag).
        since: Only runs whose data window ends at or after this ISO 8601 time count.

    Returns:
        ``{"run_id", "window_end", "drift_detected", "drifted_share", "report_uri"}`` of the run whose
        window ends last.
    """
    runs = tracking.monitoring_runs(client, experiment_name, model)
    if not runs:
        return None
    tags = runs[0].data.tags  # the newest window: if it ends before ``since``, every other one does too
    window_end = tags.get(tracking.TAG_WINDOW_END)
    floor = parse_moment(since, "since")
    if floor is not None and (window_end or "") < floor.isoformat():
        return None
    return {
        "run_id": str(runs[0].info.run_id),
        "window_end": window_end,
        "drift_detected": tags.get(tracking.TAG_DRIFT_DETECTED) == "true",
        "drifted_share": float(tags.get(tracking.TAG_DRIFTED_SHARE) or 0),
        "report_uri": tags.get(tracking.TAG_DRIFT_REPORT),
    }
