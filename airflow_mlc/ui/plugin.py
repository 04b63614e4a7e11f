"""The Airflow plugin of the provider: the Models page in the navigation and a Model tab on each model DAG.

Airflow loads this module in every process that loads plugins, task processes included, so it stays
light: the FastAPI app and everything it reads are built on the first request, in the API server.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

#: Where the API server mounts the app.
URL_PREFIX = "/mlc"


class LazyApp:
    """An ASGI app that builds :func:`airflow_mlc.ui.app.create_app` on its first request."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            from airflow_mlc.ui.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


class MLCPlugin(AirflowPlugin):
    """The Models page (``/mlc``), its navigation entry and the Model tab of every ``mlc_*`` DAG."""

    name = "airflow_mlc"
    fastapi_apps = [{"app": LazyApp(), "url_prefix": URL_PREFIX, "name": "airflow-mlc Models"}]
    external_views = [
        {
            "name": "Models",
            "href": f"{URL_PREFIX}/",
            "url_route": "mlc-models",
            "destination": "nav",
        },
        {
            "name": "Model",
            "href": f"{URL_PREFIX}/dags/{{DAG_ID}}",
            "url_route": "mlc-model",
            "destination": "dag",
        },
    ]
