"""The flareflow Airflow plugin: the researchers' dashboard as a page of the Airflow UI.

Airflow loads it through the ``airflow.plugins`` entry point of the flareflow distribution: no file of
flareflow sits in Airflow's plugins folder.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse

from flareflow.paths import dashboard_file

dashboard_app = FastAPI(title="flareflow dashboard")


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
