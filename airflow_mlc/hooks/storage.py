"""fsspec options (credentials, endpoint) for ``s3://`` paths, from an Airflow AWS connection."""

from __future__ import annotations

from typing import Any


def s3_options(aws_conn_id: str | None) -> dict[str, Any]:
    """Options for s3fs built from the Amazon provider's connection ``aws_conn_id``.

    ``None`` means boto's own credential chain (environment, instance role). The connection's
    ``endpoint_url`` extra points at an S3-compatible server.
    """
    if aws_conn_id is None:
        return {}
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    hook = AwsBaseHook(aws_conn_id=aws_conn_id, client_type="s3")
    credentials = hook.get_credentials()
    client_kwargs = {"region_name": hook.conn_region_name}
    endpoint_url = hook.conn_config.endpoint_url
    if endpoint_url:
        client_kwargs["endpoint_url"] = endpoint_url
    return {
        "key": credentials.access_key,
        "secret": credentials.secret_key,
        "token": credentials.token,
        "client_kwargs": {k: v for k, v in client_kwargs.items() if v},
    }
