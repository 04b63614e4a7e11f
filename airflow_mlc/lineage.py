"""OpenLineage datasets of the life cycle: what each task read and wrote, named as OpenLineage names datasets.

The naming functions (:func:`file_dataset`, :func:`sql_table_dataset`, :func:`mlflow_run_dataset`,
:func:`model_version_dataset`, :func:`uri_dataset`) are plain Python: they give a :class:`LineageDataset`,
a namespace and a name after OpenLineage's dataset naming spec (https://openlineage.io/docs/spec/naming)
plus what is known of it (columns, rows, a version, its type). :func:`operator_lineage` turns them into
the ``OperatorLineage`` of apache-airflow-providers-openlineage, which the operators return from
``get_openlineage_facets_on_complete``; without that provider it returns None and nothing else changes.

========================  ===========================================  ==========================================
What                      Namespace                                    Name
========================  ===========================================  ==========================================
a local file              ``file``                                     its absolute path
an object store file      ``s3://<bucket>`` (``gs://``, ...)           the object key
a SQL table               ``postgres://<host>:<port>``, ...            ``<database>.<schema>.<table>``, ...
an MLflow run             the tracking URI, without credentials        ``experiments/<id>/runs/<run id>``
a registered model's      the registry URI, without credentials        ``models/<name>/versions/<n>``
version
========================  ===========================================  ==========================================

See docs/lineage.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from airflow_mlc.spec import SourceSpec

#: ``DatasetTypeDatasetFacet.datasetType`` of a file, a SQL table, a registered model's version, an MLflow run.
FILE, TABLE, MODEL, JOB_OUTPUT = "FILE", "TABLE", "MODEL", "JOB_OUTPUT"
#: Their ``subType`` for MLflow's objects.
MLFLOW_RUN, MLFLOW_MODEL_VERSION = "MLFLOW_RUN", "MLFLOW_MODEL_VERSION"

#: SQLAlchemy dialects and Airflow connection types, by the scheme of OpenLineage's naming spec.
_SQL_SCHEMES = {"postgresql": "postgres", "psycopg2": "postgres", "mariadb": "mysql", "mssql": "sqlserver"}
#: Ports left out of a connection that the naming spec writes anyway.
_DEFAULT_PORTS = {"postgres": 5432, "mysql": 3306, "redshift": 5439, "sqlserver": 1433}
#: Schemes whose table names are ``<database>.<table>``; the others are ``<database>.<schema>.<table>``.
_NO_SCHEMA = {"mysql"}
#: Schemes whose table names are the table alone (the database is in the namespace).
_TABLE_ONLY = {"sqlite"}
#: Default schemas, where a table named without one lives.
_DEFAULT_SCHEMAS = {"postgres": "public", "redshift": "public"}


@dataclass(frozen=True)
class LineageDataset:
    """One dataset a task read or wrote, as OpenLineage identifies it, with what the task knows of it.

    Attributes:
        namespace: Where it lives (``file``, ``s3://bucket``, ``postgres://host:5432``, a tracking URI).
        name: What it is within the namespace (a path, a table, ``models/<name>/versions/<n>``).
        type: Its ``DatasetTypeDatasetFacet`` type: ``FILE``, ``TABLE``, ``MODEL``, ``JOB_OUTPUT``.
        subtype: The facet's ``subType`` (``MLFLOW_RUN``, ``MLFLOW_MODEL_VERSION``), or None.
        columns: Its column names (a ``SchemaDatasetFacet``); empty when not known.
        rows: The rows written (an output's ``OutputStatisticsOutputDatasetFacet``), or None.
        version: Its version (a ``DatasetVersionDatasetFacet``): a content fingerprint, say, or None.
    """

    namespace: str
    name: str
    type: str | None = None
    subtype: str | None = None
    columns: tuple[str, ...] = ()
    rows: int | None = None
    version: str | None = None


def _without_credentials(netloc: str) -> str:
    """A URL's ``host[:port]``, without the ``user:password@`` it may start with."""
    return netloc.rsplit("@", 1)[-1]


def _is_local(uri: str) -> bool:
    scheme = urlsplit(uri).scheme
    return not scheme or len(scheme) == 1  # a path, or a Windows drive letter


def file_location(uri: str) -> tuple[str, str]:
    """The (namespace, name) of a file or folder, from its path or URI.

    A local path or ``file://`` URI is ``("file", <absolute path>)``; an object store URI is
    ``("<scheme>://<bucket>", <key>)``, e.g. ``("s3://bucket", "models/bikes/snapshot.parquet")``.

    Args:
        uri: A path or URI, as the artifact root and the spec's source give them.
    """
    text = os.fspath(uri)
    if _is_local(text):
        return "file", os.path.abspath(text)
    parts = urlsplit(text)
    if parts.scheme == "file":
        return "file", os.path.abspath(unquote(parts.path))
    return f"{parts.scheme}://{_without_credentials(parts.netloc)}", unquote(parts.path).lstrip("/")


def file_dataset(
    uri: str,
    columns: Iterable[str] = (),
    rows: int | None = None,
    version: str | None = None,
) -> LineageDataset:
    """A file (a snapshot, a split, predictions, a report) at ``uri``, a path or URI (see :func:`file_location`)."""
    namespace, name = file_location(uri)
    return LineageDataset(namespace, name, FILE, columns=tuple(str(c) for c in columns), rows=rows, version=version)


def uri_dataset(uri: str) -> LineageDataset:
    """A dataset known by a URI only (an Airflow asset such as ``mlc://bikes/retrain``): scheme and host, path."""
    parts = urlsplit(uri)
    return LineageDataset(f"{parts.scheme}://{_without_credentials(parts.netloc)}", parts.path.lstrip("/") or "/")


def sql_scheme(kind: str) -> str:
    """The naming spec's scheme of a SQL database, from an Airflow connection type or a SQLAlchemy dialect."""
    scheme = kind.lower().split("+", 1)[0]
    return _SQL_SCHEMES.get(scheme, scheme)


def sql_namespace(kind: str, host: str | None, port: int | None = None, database: str | None = None) -> str:
    """The namespace of a SQL database: ``<scheme>://<host>:<port>`` (the default port when none is given).

    SQLite, which the naming spec leaves out, is ``sqlite://<absolute path of the database file>``.

    Args:
        kind: An Airflow connection type (``postgres``) or a SQLAlchemy dialect (``postgresql+psycopg2``).
        host: The server; for SQLite, the database file (an Airflow SQLite connection's host).
        port: The server's port.
        database: The database; for SQLite, the database file when ``host`` is empty (a SQLAlchemy URL).
    """
    scheme = sql_scheme(kind)
    if scheme == "sqlite":
        path = host or database or ":memory:"
        return f"sqlite://{path if path == ':memory:' else os.path.abspath(path)}"
    port = port or _DEFAULT_PORTS.get(scheme)
    return f"{scheme}://{host or 'localhost'}{f':{port}' if port else ''}"


def sql_table_name(namespace: str, table: str, database: str | None = None) -> str:
    """The name of ``table`` in the database of ``namespace``, as qualified as the naming spec wants it.

    PostgreSQL (and most databases) name a table ``<database>.<schema>.<table>``, the schema
    ``public`` when none is given; MySQL ``<database>.<table>``; SQLite the table alone.

    Args:
        namespace: The database's namespace (:func:`sql_namespace`).
        table: The table, as the query or the spec writes it (``predictions``, ``analytics.predictions``).
        database: The connection's database, put in front of a table named without one.
    """
    scheme = namespace.split("://", 1)[0]
    parts = [part.strip().strip('"`[]') for part in table.split(".") if part.strip()]
    if scheme in _TABLE_ONLY:
        return ".".join(parts[-1:])
    depth = 2 if scheme in _NO_SCHEMA else 3
    if depth == 3 and len(parts) == 1 and scheme in _DEFAULT_SCHEMAS:
        parts.insert(0, _DEFAULT_SCHEMAS[scheme])
    if database and len(parts) == depth - 1:
        parts.insert(0, database)
    return ".".join(parts)


def sql_table_dataset(
    namespace: str,
    table: str,
    database: str | None = None,
    columns: Iterable[str] = (),
    rows: int | None = None,
) -> LineageDataset:
    """A SQL table of the database ``namespace`` (see :func:`sql_table_name`)."""
    name = sql_table_name(namespace, table, database)
    return LineageDataset(namespace, name, TABLE, columns=tuple(str(c) for c in columns), rows=rows)


def mlflow_namespace(uri: str) -> str:
    """An MLflow tracking or registry URI as a namespace: without credentials, query or trailing slash.

    ``https://user:token@mlflow.example.com/`` is ``https://mlflow.example.com``; a local folder
    (``/srv/mlruns``, ``./mlruns``) is its ``file://`` URI; a name without ``//`` (``databricks``)
    stays as it is.
    """
    if "://" not in uri:
        if uri.startswith((".", "/", "\\")) or len(urlsplit(uri).scheme) == 1:
            return "file://" + os.path.abspath(uri)
        return uri
    parts = urlsplit(uri)
    return f"{parts.scheme}://{_without_credentials(parts.netloc)}{parts.path}".rstrip("/")


def mlflow_run_dataset(tracking_uri: str, experiment_id: str, run_id: str) -> LineageDataset:
    """An MLflow run (its parameters, metrics and logged model): ``experiments/<id>/runs/<run id>``."""
    return LineageDataset(
        mlflow_namespace(tracking_uri), f"experiments/{experiment_id}/runs/{run_id}", JOB_OUTPUT, MLFLOW_RUN
    )


def model_version_dataset(registry_uri: str, model: str, version: str | int) -> LineageDataset:
    """A version of a registered model, of type ``MODEL``: ``models/<name>/versions/<n>``."""
    return LineageDataset(
        mlflow_namespace(registry_uri),
        f"models/{model}/versions/{version}",
        MODEL,
        MLFLOW_MODEL_VERSION,
        version=str(version),
    )


def sql_connection_location(conn_id: str) -> tuple[str, str | None, str]:
    """The (namespace, database, scheme) of the Airflow SQL connection ``conn_id``.

    The connection's hook says it when it implements ``get_openlineage_database_info`` (PostgreSQL,
    MySQL, Snowflake, ...), as for Airflow's own SQL operators; else it comes from the connection's
    type, host, port and schema (:func:`sql_namespace`).
    """
    from airflow.sdk import BaseHook

    connection = BaseHook.get_connection(conn_id)
    info = None
    try:
        info = connection.get_hook().get_openlineage_database_info(connection)
    except Exception:  # no such method, or a hook that cannot say: the connection's fields are enough
        info = None
    if info is not None and getattr(info, "scheme", None):
        namespace = f"{info.scheme}://{info.authority}" if info.authority else str(info.scheme)
        return namespace, info.database or connection.schema or None, str(info.scheme)
    namespace = sql_namespace(connection.conn_type or "", connection.host, connection.port, connection.schema)
    return namespace, connection.schema or None, sql_scheme(connection.conn_type or "")


def _url_location(url: str) -> tuple[str, str | None, str]:
    """The (namespace, database, scheme) of a SQLAlchemy URL (its password is never read)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    namespace = sql_namespace(parsed.drivername, parsed.host, parsed.port, parsed.database)
    database = None if sql_scheme(parsed.drivername) == "sqlite" else parsed.database
    return namespace, database, sql_scheme(parsed.drivername)


def query_tables(query: str, scheme: str) -> list[str]:
    """The tables ``query`` reads, dotted as written (``schema.table``), by the OpenLineage SQL parser.

    Empty when the parser is not installed or cannot read the query.
    """
    try:
        from airflow.providers.openlineage.sqlparser import SQLParser

        parser = SQLParser(dialect=scheme)
        meta = parser.parse(parser.split_sql_string(query))
    except Exception:  # an optional parser: the query itself is still reported (the job's ``sql`` facet)
        return []
    if meta is None:
        return []
    return [".".join(p for p in (t.database, t.schema, t.name) if p) for t in meta.in_tables]


def source_datasets(source: SourceSpec) -> list[LineageDataset]:
    """The datasets the spec's source reads: its file, or the tables its query names."""
    if source.path is not None:
        return [file_dataset(source.path)]
    if source.sql is None:
        return []
    if source.conn_id:
        namespace, database, scheme = sql_connection_location(source.conn_id)
    elif source.url:
        namespace, database, scheme = _url_location(source.url)
    else:
        return []
    return [sql_table_dataset(namespace, table, database) for table in query_tables(source.sql, scheme)]


def provider_installed() -> bool:
    """Whether apache-airflow-providers-openlineage can be imported."""
    try:
        from airflow.providers.openlineage.extractors.base import OperatorLineage  # noqa: F401
    except ImportError:
        return False
    return True


def _facets(dataset: LineageDataset) -> dict[str, Any]:
    from airflow.providers.common.compat.openlineage.facet import SchemaDatasetFacet, SchemaDatasetFacetFields

    facets: dict[str, Any] = {}
    if dataset.columns:
        facets["schema"] = SchemaDatasetFacet(fields=[SchemaDatasetFacetFields(name=c) for c in dataset.columns])
    if dataset.type:
        try:
            from openlineage.client.generated.dataset_type_dataset import DatasetTypeDatasetFacet
        except ImportError:  # an openlineage-python older than the facet
            pass
        else:
            facets["datasetType"] = DatasetTypeDatasetFacet(datasetType=dataset.type, subType=dataset.subtype)
    if dataset.version:
        try:
            from openlineage.client.generated.dataset_version_dataset import DatasetVersionDatasetFacet
        except ImportError:
            pass
        else:
            facets["version"] = DatasetVersionDatasetFacet(datasetVersion=dataset.version)
    return facets


def _unique(datasets: Iterable[LineageDataset]) -> list[LineageDataset]:
    """The datasets, each (namespace, name) once, in order."""
    seen: dict[tuple[str, str], LineageDataset] = {}
    for dataset in datasets:
        seen.setdefault((dataset.namespace, dataset.name), dataset)
    return list(seen.values())


def operator_lineage(
    inputs: Sequence[LineageDataset], outputs: Sequence[LineageDataset], query: str | None = None
) -> Any:
    """The provider's ``OperatorLineage`` of these inputs and outputs; None without the OpenLineage provider.

    Args:
        inputs: What the task read.
        outputs: What the task wrote; their ``rows`` become ``outputStatistics``.
        query: A SQL query the task ran, as the job's ``sql`` facet.
    """
    try:
        from airflow.providers.common.compat.openlineage.facet import (
            InputDataset,
            OutputDataset,
            OutputStatisticsOutputDatasetFacet,
            SQLJobFacet,
        )
        from airflow.providers.openlineage.extractors.base import OperatorLineage
    except ImportError:
        return None

    def output(dataset: LineageDataset) -> Any:
        statistics: dict[str, Any] = {}
        if dataset.rows is not None:
            statistics["outputStatistics"] = OutputStatisticsOutputDatasetFacet(rowCount=int(dataset.rows))
        return OutputDataset(dataset.namespace, dataset.name, facets=_facets(dataset), outputFacets=statistics)

    job_facets = {"sql": SQLJobFacet(query=query)} if query else {}
    return OperatorLineage(
        inputs=[InputDataset(d.namespace, d.name, facets=_facets(d)) for d in _unique(inputs)],
        outputs=[output(d) for d in _unique(outputs)],
        job_facets=job_facets,
    )
