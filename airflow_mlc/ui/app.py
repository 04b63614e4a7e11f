"""The Models page: a FastAPI app that Airflow's API server mounts at ``/mlc``.

Every route needs a signed-in Airflow user (the UI's session cookie or a bearer token) and asks
Airflow's auth manager: reading a model needs read access to each of its DAGs, the rollback action
needs the right to trigger its rollback DAG. The page shows what the registry and the DAG runs
record; it never shows a connection, a password or a token.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from airflow.api_fastapi.core_api.security import get_user
from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from airflow_mlc.core import history
from airflow_mlc.spec import ModelLifecycleSpec

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.models.base_user import BaseUser

#: The signed-in Airflow user, resolved by the API server's own dependency: 401 or 403 without one.
User = Annotated[Any, Depends(get_user)]

#: Versions per page of a model's versions table, newest first.
VERSIONS_PER_PAGE = 50

#: How many of the newest training and monitoring runs the model list reads per model.
LIST_RUNS = 10

#: Where the page says more about a version's or a run's record.
AIRFLOW_RUN_PATH = "/dags/{dag_id}/runs/{run_id}"


def create_app() -> FastAPI:
    """The app with its routes (this module is imported by the plugin on the first request only)."""
    app = FastAPI(title="airflow-mlc Models", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", response_class=HTMLResponse)
    def model_list(request: Request, user: User) -> HTMLResponse:
        rows, problems = readable_summaries(user)
        return render(request, "models.html", models=rows, problems=problems)

    @app.get("/api/models")
    def model_list_json(user: User) -> JSONResponse:
        rows, problems = readable_summaries(user)
        return JSONResponse({"models": [history.plain(row) for row in rows], "invalid_specs": problems})

    @app.get("/models/{name}", response_class=HTMLResponse)
    def model_view(
        request: Request, name: str, user: User, rollback: str | None = None, versions: str | None = None
    ) -> HTMLResponse:
        spec = readable_spec(user, name)
        page, links = model_data(spec, versions)
        status = None
        if rollback:
            from airflow_mlc.ui.records import run_state

            status = {"run_id": rollback, "state": run_state(spec.dag_ids["rollback"], rollback)}
        return render(
            request,
            "model.html",
            spec=spec,
            page=page,
            links=links,
            charts=charts_of(page),
            can_rollback=can_trigger_rollback(user, spec),
            csrf=csrf_token(user, spec.name),
            rollback_status=status,
        )

    @app.get("/api/models/{name}")
    def model_json(name: str, user: User, versions: str | None = None) -> JSONResponse:
        page, links = model_data(readable_spec(user, name), versions)
        return JSONResponse({**page.as_dict(), "links": links})

    @app.get("/dags/{dag_id}")
    def model_of_dag(request: Request, dag_id: str, user: User) -> Response:
        specs, _ = load_specs()
        for spec in specs:
            if dag_id in spec.dag_ids.values():
                return RedirectResponse(f"{root(request)}/models/{spec.name}", status_code=307)
        return render(request, "not_a_model.html", status_code=404, dag_id=dag_id)

    @app.post("/models/{name}/rollback")
    def rollback(
        request: Request,
        name: str,
        user: User,
        version: Annotated[str, Form()],
        reason: Annotated[str, Form()],
        csrf: Annotated[str, Form()],
    ) -> RedirectResponse:
        from airflow_mlc.ui.records import trigger_rollback

        spec = readable_spec(user, name)
        if not can_trigger_rollback(user, spec):
            raise HTTPException(403, f"you may not trigger {spec.dag_ids['rollback']}")
        if not hmac.compare_digest(csrf, csrf_token(user, spec.name)):
            raise HTTPException(403, "the form is stale or was not sent by this page: reload it and try again")
        if not reason.strip() or not version.strip():
            raise HTTPException(422, "a rollback needs a version and a reason")
        try:
            run_id, _ = trigger_rollback(spec.dag_ids["rollback"], version.strip(), reason.strip(), user.get_name())
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from exc
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from exc
        from urllib.parse import quote

        return RedirectResponse(
            f"{root(request)}/models/{spec.name}?rollback={quote(run_id)}#rollback-section", status_code=303
        )

    return app


def root(request: Request) -> str:
    """Where the app is mounted (``/mlc``), for links between its pages."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def specs_folder() -> Path:
    """The spec folder of the DAG file: ``$MLC_SPECS_DIR``, else ``specs`` in Airflow's DAGs folder."""
    from airflow.configuration import conf

    from airflow_mlc.dag_factory import specs_dir

    return specs_dir(Path(conf.get("core", "dags_folder")) / "specs")


def load_specs() -> tuple[list[ModelLifecycleSpec], dict[str, str]]:
    """The valid specs and the errors of the invalid ones, re-read when a spec file changes."""
    from airflow_mlc.spec import spec_files

    folder = specs_folder()
    files = spec_files(folder) if folder.is_dir() else []
    stamp = tuple((str(f), f.stat().st_mtime_ns) for f in files)
    return _load_specs(str(folder), stamp)


@lru_cache(maxsize=4)
def _load_specs(folder: str, stamp: tuple[tuple[str, int], ...]) -> tuple[list[ModelLifecycleSpec], dict[str, str]]:
    from airflow_mlc.spec import load_specs_reporting

    found = load_specs_reporting(folder)
    return list(found.specs), {str(path): str(error) for path, error in found.errors.items()}


def readable_spec(user: BaseUser, name: str) -> ModelLifecycleSpec:
    """The spec of model ``name`` if the user may read all its DAGs: 404 for an unknown model, else 403."""
    specs, _ = load_specs()
    spec = next((spec for spec in specs if spec.name == name), None)
    if spec is None:
        raise HTTPException(404, f"no model spec is named {name!r}")
    if not can_read(user, spec):
        raise HTTPException(403, f"you may not read the DAGs of {name}")
    return spec


def _authorized(user: BaseUser, method: str, dag_id: str, run: bool = False) -> bool:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    return bool(
        get_auth_manager().is_authorized_dag(
            method=method,  # type: ignore[arg-type]
            access_entity=DagAccessEntity.RUN if run else None,
            details=DagDetails(id=dag_id),
            user=user,
        )
    )


def can_read(user: BaseUser, spec: ModelLifecycleSpec) -> bool:
    """Read access to every DAG of the model."""
    return all(_authorized(user, "GET", dag_id) for dag_id in spec.dag_ids.values())


def can_trigger_rollback(user: BaseUser, spec: ModelLifecycleSpec) -> bool:
    """The right to create a run of the model's rollback DAG."""
    return _authorized(user, "POST", spec.dag_ids["rollback"], run=True)


def csrf_token(user: BaseUser, model: str) -> str:
    """The rollback form's token: tied to the user and the model, signed with the API's JWT secret."""
    from airflow.configuration import conf

    secret = (conf.get("api_auth", "jwt_secret", fallback="") or "mlc").encode()
    return hmac.new(secret, f"{user.get_id()}:{user.get_name()}:{model}".encode(), hashlib.sha256).hexdigest()


def mlflow_client(spec: ModelLifecycleSpec) -> tuple[Any, Any]:
    """An MLflow client for the spec's MLflow connection, and its target (for the UI's address)."""
    from airflow_mlc.hooks.mlflow import MLflowHook

    target = MLflowHook(spec.mlflow.conn_id).get_conn()
    return target.activate(), target


def registry_records(
    client: Any, spec: ModelLifecycleSpec, all_versions: bool = True, page_token: str | None = None
) -> dict[str, Any]:
    """The registry's part of the page: aliases, champion moves and versions.

    Versions: a page of the newest ``VERSIONS_PER_PAGE`` (``next_page`` is the token of the following page),
    or only the champion's.
    """
    from mlflow.exceptions import MlflowException

    from airflow_mlc.core.registry import CHAMPION, champion_history

    name = spec.registered_model_name
    try:
        aliases = {k: str(v) for k, v in (client.get_registered_model(name).aliases or {}).items()}
    except MlflowException:
        return {"aliases": {}, "versions": [], "moves": [], "next_page": None}
    if not all_versions:
        versions = [client.get_model_version(name, aliases[CHAMPION])] if CHAMPION in aliases else []
        return {"aliases": aliases, "versions": versions, "moves": [], "next_page": None}
    found = client.search_model_versions(
        f"name = '{name}'",
        max_results=VERSIONS_PER_PAGE,
        order_by=["version_number DESC"],
        page_token=page_token or None,
    )
    moves = champion_history(client, spec.registry_experiment_name, name)
    token = found.token.decode() if isinstance(found.token, bytes) else found.token
    return {"aliases": aliases, "versions": list(found), "moves": moves, "next_page": token}


def model_data(spec: ModelLifecycleSpec, page_token: str | None = None) -> tuple[history.ModelPage, dict[str, Any]]:
    """The model page's data and its links (MLflow runs and versions, Airflow runs, the next versions page)."""
    from airflow_mlc.core.model_card import CARD_HTML
    from airflow_mlc.links.mlflow import artifact_url, model_version_url, run_url
    from airflow_mlc.ui.records import paused_flags, run_records

    client, target = mlflow_client(spec)
    registry = registry_records(client, spec, page_token=page_token)
    ids = list(spec.dag_ids.values())
    page = history.model_page(
        spec, registry["versions"], registry["aliases"], registry["moves"], run_records(ids), paused_flags(ids)
    )
    experiment = client.get_experiment_by_name(spec.experiment_name) if target.ui_url else None
    links = {
        "mlflow_runs": {
            row.version: run_url(target.ui_url, experiment.experiment_id, row.run_id)
            for row in page.versions
            if experiment is not None and row.run_id
        },
        "model_cards": {
            row.version: artifact_url(target.ui_url, experiment.experiment_id, row.run_id, CARD_HTML)
            for row in page.versions
            if experiment is not None and row.run_id and row.model_card
        },
        "mlflow_versions": {
            row.version: model_version_url(target.ui_url, spec.registered_model_name, row.version)
            for row in page.versions
        },
        "mlflow_ui": target.ui_url,
        "older_versions": registry["next_page"],
    }
    return page, links


def readable_summaries(user: BaseUser) -> tuple[list[history.ModelSummary], dict[str, str]]:
    """The list rows of the models the user may read, and the errors of the invalid spec files."""
    specs, problems = load_specs()
    return [model_summary(spec) for spec in specs if can_read(user, spec)], problems


def model_summary(spec: ModelLifecycleSpec) -> history.ModelSummary:
    """The model's row in the list: the champion's version only, and the newest runs."""
    from airflow_mlc.ui.records import paused_flags, run_records

    client, _ = mlflow_client(spec)
    registry = registry_records(client, spec, all_versions=False)
    ids = spec.dag_ids
    runs = run_records([ids["train"], ids["monitor"]], newest=LIST_RUNS)
    rows = history.version_rows(registry["versions"], registry["aliases"], {})
    windows = history.monitoring_windows(run for run in runs if run.dag_id == ids["monitor"])
    training = [run for run in runs if run.dag_id == ids["train"]]
    return history.summary(spec, registry["aliases"], rows, windows, training, paused_flags(list(ids.values())))


def charts_of(page: history.ModelPage) -> dict[str, str]:
    """The page's SVG charts."""
    from markupsafe import Markup

    from airflow_mlc.ui import charts

    labels = [window.window_end for window in page.monitoring]
    return {
        "drift": Markup(charts.drift_chart(labels, page.drift)),
        "share": Markup(charts.share_chart(page.monitoring)),
        "quality": Markup(charts.quality_chart(page.monitoring)),
        **{
            f"prediction:{batch.run_id}": Markup(charts.distribution_bars(batch.distribution))
            for batch in page.predictions
        },
    }


@lru_cache(maxsize=1)
def _templates() -> Any:
    from jinja2 import Environment, PackageLoader, select_autoescape

    environment = Environment(loader=PackageLoader("airflow_mlc.ui", "templates"), autoescape=select_autoescape())
    environment.filters["num"] = lambda value, digits=3: "" if value is None else f"{value:.{digits}g}"
    return environment


def render(request: Request, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    """A page of the app, with the links it needs to find its siblings and the Airflow UI."""
    html = _templates().get_template(template).render(root=root(request), airflow_run=AIRFLOW_RUN_PATH, **values)
    return HTMLResponse(html, status_code=status_code)
