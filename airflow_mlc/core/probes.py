"""The checks the sensors wait on: rows in a data window, a model version, a drift verdict.

Each check is one cheap look at the world (a ``COUNT(*)``, a registry lookup, a run search) that the
sensors repeat until it comes out true.
"""

from __future__ import annotations

from typing import Any

from airflow_mlc.core import registry, storage, tracking
from airflow_mlc.core.ingest import filter_window, read_source, sql_errors, window_params
from airflow_mlc.core.window import Window, parse_moment
from airflow_mlc.spec import SourceSpec

#: Time values fetched at a time when a SQL source's times are counted here (text in a ``time_format``).
FETCH_ROWS = 50_000


def count_window_rows(
    source: SourceSpec, window: Window, options: dict[str, Any] | None = None, engine: Any = None
) -> int:
    """The number of rows of ``source`` inside ``window``; 0 for a file that does not exist yet.

    A SQL source is counted by the database: ``SELECT COUNT(*)`` over the query, kept inside the window
    on ``time_column`` when the spec names one, with the bounds in the column's ``time_unit`` as
    ``core.ingest.window_params`` gives them; the query gets the same bounds as ``:window_start`` and
    ``:window_end``, as in ingest. One value of the time column is first read through
    ``core.ingest.to_times``, so a column that holds no times (or integers without a ``time_unit``)
    is an error, not a count of 0. Text times in a ``time_format`` cannot be compared by the
    database: then only the time column is fetched, and its times are counted here. A file is read
    and filtered like ingest reads it.

    Args:
        source: The spec's source.
        window: The data window; an unset bound is not checked.
        options: fsspec options for an ``s3://`` file.
        engine: A SQLAlchemy engine or URL for a SQL source; default: ``source.url``.

    Returns:
        The row count.

    Raises:
        DataError: A malformed file, or a time column without times (see ``to_times``).
        BadInputError: The query is wrong (no such table or column, a syntax error).
    """
    if source.sql is not None:
        return _count_sql(source, window, engine or source.url)
    path = str(source.path)
    if not storage.exists(path, options):
        return 0
    return len(read_source(source, window, options))


def _count_sql(source: SourceSpec, window: Window, engine: Any) -> int:
    import sqlalchemy

    owned = isinstance(engine, str)
    if owned:
        engine = sqlalchemy.create_engine(engine)
    query = str(source.sql).strip().rstrip(";").strip()
    try:
        with sql_errors(str(source.sql)), engine.connect() as connection:
            if not source.time_column:
                return _scalar(connection, f"SELECT COUNT(*) FROM ({query}) AS q", source, window)
            column = f"q.{engine.dialect.identifier_preparer.quote(source.time_column)}"
            if source.time_format is not None:  # text times the database cannot order: counted here
                return _count_fetched(connection, query, column, source, window)
            _check_sample(connection, query, column, source, window)
            conditions = []
            if window.start is not None:
                conditions.append(f"{column} >= :window_start")
            if window.end is not None:
                conditions.append(f"{column} < :window_end")
            text = f"SELECT COUNT(*) FROM ({query}) AS q"
            if conditions:
                text += " WHERE " + " AND ".join(conditions)
            return _scalar(connection, text, source, window)
    finally:
        if owned:  # a sensor counts again and again: no pool left behind each time
            engine.dispose()


def _scalar(connection: Any, text: str, source: SourceSpec, window: Window) -> int:
    import sqlalchemy

    # Bound as ingest binds them; a query may use either bound itself, even an unset one (None).
    params = window_params(text, window, source)
    return int(connection.execute(sqlalchemy.text(text), params).scalar_one())


def _time_column_select(query: str, column: str) -> Any:
    import sqlalchemy

    return sqlalchemy.select(sqlalchemy.literal_column(column)).select_from(sqlalchemy.text(f"({query}) AS q"))


def _check_sample(connection: Any, query: str, column: str, source: SourceSpec, window: Window) -> None:
    """Read one value of the time column through ``to_times``: a column without times fails here."""
    import sqlalchemy

    statement = _time_column_select(query, column)
    statement = statement.where(sqlalchemy.literal_column(column).is_not(None)).limit(1)
    rows = connection.execute(statement, window_params(query, window, source)).all()
    _times_in_window(rows, source, window)


def _count_fetched(connection: Any, query: str, column: str, source: SourceSpec, window: Window) -> int:
    """Fetch the time column a batch at a time and count the times inside the window."""
    result = connection.execution_options(stream_results=True).execute(
        _time_column_select(query, column), window_params(query, window, source)
    )
    return sum(_times_in_window(rows, source, window) for rows in result.partitions(FETCH_ROWS))


def _times_in_window(rows: Any, source: SourceSpec, window: Window) -> int:
    import pandas as pd

    values = pd.Series([row[0] for row in rows], dtype=object).infer_objects()
    return len(filter_window(pd.DataFrame({str(source.time_column): values}), source, window))


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
