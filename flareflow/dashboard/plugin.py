"""The flareflow Airflow plugin: the researchers' dashboard as a page of the Airflow UI.

Airflow loads it through the ``airflow.plugins`` entry point of the flareflow distribution: no file of
flareflow sits in Airflow's plugins folder.

Airflow mounts a plugin's FastAPI app without any authentication, so the app itself requires one, for
every route: an Airflow user authenticated by the deployment's auth manager (the same as the UI's), with
a JWT as ``Authorization: Bearer`` header or the UI's ``_token`` cookie (which the page, embedded in the
UI, receives), who may read the ``federated_retraining`` DAG whose results the page shows. No
credentials or an expired token: 401; a forged token or a user without access to the DAG: 403.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import FileResponse, HTMLResponse

from flareflow.paths import dashboard_file

#: the DAG whose runs the dashboard shows: reading it is what the page requires
DASHBOARD_DAG_ID = "federated_retraining"


async def require_dag_reader(request: Request) -> Any:
    """Return the request's Airflow user if it may read the dashboard's DAG; raise 401 or 403 otherwise.

    Airflow's own ``get_user`` resolves the user (Bearer header first, else the ``_token`` cookie);
    its modules are imported here, on the first request, because every Airflow process (workers too)
    loads this plugin and only the api-server serves it.

    :param request: the incoming request
    """
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    user = await get_user(request, None, await bearer_scheme(request))
    if not get_auth_manager().is_authorized_dag(method="GET", details=DagDetails(id=DASHBOARD_DAG_ID), user=user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"the dashboard needs read access to {DASHBOARD_DAG_ID}")
    return user


# no /docs, /redoc or /openapi.json: FastAPI serves those outside the app's dependencies, i.e. anonymously
dashboard_app = FastAPI(title="flareflow dashboard", dependencies=[Depends(require_dag_reader)], docs_url=None,
                        redoc_url=None, openapi_url=None)


@dashboard_app.get("/", response_model=None)
def dashboard() -> FileResponse | HTMLResponse:
    """Serve the last rendered dashboard."""
    page = dashboard_file()
    if not page.is_file():
        return HTMLResponse("<p>No dashboard yet: it is rendered at the end of each successful run.</p>",
                            status_code=404)
    return FileResponse(page, media_type="text/html")


class FlareflowPlugin(AirflowPlugin):
    """Mount the dashboard at /flareflow and link it from the UI's navigation."""

    name = "flareflow"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [
        {"app": dashboard_app, "url_prefix": "/flareflow", "name": "flareflow dashboard"},
    ]
    external_views: ClassVar[list[dict[str, Any]]] = [
        {"name": "Federated model dashboard", "href": "/flareflow/", "destination": "nav",
         "category": "browse", "url_route": "flareflow"},
    ]
