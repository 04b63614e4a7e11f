"""The sensors' probes, beside the trigger: run by a sensor's ``poke`` and by ``ProbeTrigger`` in the triggerer.

A probe takes only JSON-serializable keyword arguments (a trigger stores them in Airflow's database)
and returns ``(done, detail)``: whether the awaited condition holds, and a JSON-serializable dict that
becomes the sensor's XCom value once it does. The heavy core is imported inside each probe, so this
module is safe to import while DAG files are parsed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow_mlc.errors import BadInputError
from airflow_mlc.run_context import rendered

Probe = Callable[..., tuple[bool, dict[str, Any]]]


def data_available(
    source: dict[str, Any] | None = None,
    window_start: str | None = None,
    window_end: str | None = None,
    min_rows: int = 1,
    spec_file: str | None = None,
    spec_name: str | None = None,
) -> tuple[bool, dict[str, Any]]:
    """Whether the source holds at least ``min_rows`` rows in the window.

    Args:
        source: The spec's source, as ``SourceSpec.model_dump()``; None with ``spec_file``.
        window_start: ISO 8601 start of the window, or None for no bound.
        window_end: ISO 8601 end of the window (exclusive), or None for no bound.
        min_rows: Rows needed.
        spec_file: Instead of ``source``, the spec file whose source is read again at each probe: a
            source given by ``url`` (which may hold a password) travels this way, so a trigger's stored
            arguments hold no secret.
        spec_name: The ``name`` of the spec in ``spec_file``, checked against it.

    Returns:
        Done when ``rows >= min_rows``; detail ``{"rows", "min_rows", "window": {"start", "end"}, "source"}``.
    """
    from airflow_mlc.core.window import Window, parse_moment
    from airflow_mlc.hooks.source import open_spec_source
    from airflow_mlc.spec import SourceSpec

    spec = SourceSpec.model_validate(source) if spec_file is None else _spec_source(spec_file, spec_name)
    window = Window(parse_moment(window_start, "window_start"), parse_moment(window_end, "window_end"))
    with open_spec_source(spec) as reader:
        rows = reader.count(window)
    detail = {"rows": rows, "min_rows": min_rows, "window": window.as_dict(), "source": spec.path or "sql"}
    return rows >= min_rows, detail


def _spec_source(spec_file: str, spec_name: str | None) -> Any:
    """The source of the spec in ``spec_file``, which must be the spec ``spec_name``."""
    from airflow_mlc.spec import load_spec

    spec = load_spec(spec_file)
    if spec_name is not None and spec.name != spec_name:
        raise BadInputError(f"{spec_file}: holds the spec {spec.name!r}, not {spec_name!r}")
    return spec.source


def model_version(
    mlflow_conn_id: str, model: str, alias: str | None = None, newer_than: str | int | None = None
) -> tuple[bool, dict[str, Any]]:
    """Whether the registered model has the awaited version.

    The version looked at is the one ``alias`` points at, or without an alias the newest version.

    Args:
        mlflow_conn_id: The MLflow connection.
        model: The registered model name.
        alias: An alias such as ``champion``; None (or "") means the newest version.
        newer_than: A version number the looked-at version must exceed; None (or "") means any version.

    Returns:
        Done when that version exists (and is above ``newer_than``); detail
        ``{"model", "alias", "version", "newer_than"}`` with ``version`` a string, or None.
    """
    from airflow_mlc.core.probes import alias_version, newest_version

    alias = alias or None
    floor = _version_number(newer_than)
    client = _mlflow_client(mlflow_conn_id)
    version = alias_version(client, model, alias) if alias else newest_version(client, model)
    done = version is not None and (floor is None or int(version) > floor)
    return done, {"model": model, "alias": alias, "version": version, "newer_than": floor}


def _version_number(value: str | int | None) -> int | None:
    text = rendered(value)  # "None": a template that rendered an empty XCom
    if text is None:
        return None
    try:
        return int(text)
    except (TypeError, ValueError):
        raise BadInputError(f"newer_than {value!r} is not a model version number") from None


def drift(
    mlflow_conn_id: str, experiment_name: str, model: str, since: str | None = None
) -> tuple[bool, dict[str, Any]]:
    """Whether the newest monitoring run of ``model`` found drift.

    Args:
        mlflow_conn_id: The MLflow connection.
        experiment_name: The monitoring experiment.
        model: The spec's model name (the runs' ``mlc.model`` tag).
        since: Only a run whose data window ends at or after this ISO 8601 time counts.

    Returns:
        Done when that run's drift was detected; detail
        ``{"run_id", "window_end", "drift_detected", "drifted_share", "report_uri"}`` (all None or
        false when there is no such run).
    """
    from airflow_mlc.core.probes import newest_drift

    found = newest_drift(_mlflow_client(mlflow_conn_id), experiment_name, model, since or None)
    if found is None:
        return False, {
            "run_id": None,
            "window_end": None,
            "drift_detected": False,
            "drifted_share": 0.0,
            "report_uri": None,
        }
    return bool(found["drift_detected"]), found


def _mlflow_client(mlflow_conn_id: str) -> Any:
    from airflow_mlc.hooks.mlflow import MLflowHook

    return MLflowHook(mlflow_conn_id).get_conn().activate()


PROBES: dict[str, Probe] = {
    "data_available": data_available,
    "model_version": model_version,
    "drift": drift,
}


def run_probe(name: str, arguments: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """Run the probe ``name`` with its keyword ``arguments``."""
    try:
        probe = PROBES[name]
    except KeyError:
        raise ValueError(f"unknown probe {name!r} (known: {', '.join(sorted(PROBES))})") from None
    return probe(**arguments)
