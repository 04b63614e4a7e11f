"""The spec's data source with what Airflow connections give it: the one place sources meet connections.

A file on ``s3://`` gets fsspec options from an AWS connection (``hooks.storage.s3_options``); a SQL
query gets a SQLAlchemy engine from **any** Airflow SQL connection, that is any connection whose hook is a
common.sql ``DbApiHook`` (PostgreSQL, MySQL/MariaDB, SQLite, Snowflake, BigQuery, ...). The reading itself
is ``airflow_mlc.core.sources``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_mlc.errors import BadInputError

if TYPE_CHECKING:
    from airflow_mlc.core.sources import Source
    from airflow_mlc.spec import SourceSpec


def sql_engine(conn_id: str) -> Any:
    """A SQLAlchemy engine from the Airflow SQL connection ``conn_id`` (its ``DbApiHook``).

    Raises:
        BadInputError: The connection's hook is not a SQL hook (an AWS connection given for a query ...).
    """
    from airflow.providers.common.sql.hooks.sql import DbApiHook
    from airflow.sdk import BaseHook

    connection = BaseHook.get_connection(conn_id)
    hook = connection.get_hook()
    if not isinstance(hook, DbApiHook):
        raise BadInputError(
            f"connection {conn_id!r} (type {connection.conn_type!r}) is not a SQL connection: its hook "
            f"{type(hook).__name__} is no common.sql DbApiHook"
        )
    return hook.get_sqlalchemy_engine()


def open_spec_source(spec: SourceSpec) -> Source:
    """The spec's source, ready to read: close it (or use it as a context manager) when done."""
    from airflow_mlc.core.sources import open_source
    from airflow_mlc.hooks.storage import s3_options

    if spec.sql is not None:
        engine = sql_engine(spec.conn_id) if spec.conn_id else None
        return open_source(spec, engine=engine, owns_engine=engine is not None)
    options = s3_options(spec.conn_id) if str(spec.path).startswith("s3://") else {}
    return open_source(spec, options)
