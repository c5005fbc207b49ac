"""The dashboard and every flareflow endpoint require an Airflow user authenticated like the UI's.

Against the real api-server of ``airflow_services``: SimpleAuthManager with real users and passwords
(not "everyone is admin"), the dashboard rendered by the Celery runs. Each request's HTTP status is
recorded in ``auth-statuses.json`` beside the services' files and logged.
"""

from __future__ import annotations

import json
import logging
import secrets

import httpx
import jwt
import pytest
from browser import chromium, headless_page
from fastapi.routing import APIRoute
from real_services import AirflowServices, CeleryRuns

from flareflow.dashboard.plugin import dashboard_app, require_dag_reader
from flareflow.local.cli import DAG_ID

pytestmark = pytest.mark.services

log = logging.getLogger(__name__)
DASHBOARD = "/flareflow/"


def test_every_flareflow_route_depends_on_the_auth_check() -> None:
    routes = [route for route in dashboard_app.routes if isinstance(route, APIRoute)]
    assert routes, "the dashboard app has no routes"
    assert all(any(dep.call is require_dag_reader for dep in route.dependant.dependencies) for route in routes)
    # FastAPI's own pages would be served outside the app's dependencies: there are none
    assert {route.path for route in dashboard_app.routes} == {route.path for route in routes}


def test_the_dashboard_needs_a_logged_in_user(airflow_services: AirflowServices, celery_runs: CeleryRuns) -> None:
    services = airflow_services
    forged = jwt.encode({"sub": "admin", "aud": "apache-airflow"}, secrets.token_hex(32), algorithm="HS512")

    def status(*, user: str | None = None, **kwargs: object) -> int:
        return services.request("GET", DASHBOARD, user=user, **kwargs).status_code

    statuses = {
        "no credentials": status(),
        "garbage bearer token": status(headers={"Authorization": "Bearer not-a-jwt"}),
        "bearer token signed with another secret": status(headers={"Authorization": f"Bearer {forged}"}),
        "garbage _token cookie": status(cookies={"_token": "not-a-jwt"}),
        "POST /auth/token with the right password": login_status(services, services.passwords["researcher"]),
        "POST /auth/token with a wrong password": login_status(services, "not-the-password"),
        "viewer bearer token": status(user="researcher"),
        "viewer _token cookie (the UI's)": status(cookies={"_token": services.token("researcher")}),
        "op bearer token": status(user="operator"),
        "admin bearer token": status(user="admin"),
        "FastAPI's docs page of the dashboard app": services.request("GET", "/flareflow/docs", user=None).status_code,
        "the REST API, no credentials": services.request("GET", "/api/v2/dags", user=None).status_code,
        "the REST API, viewer": services.request("GET", "/api/v2/dags", user="researcher").status_code,
        "viewer triggers a run": services.request("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", user="researcher",
                                                  json={"logical_date": None}).status_code,
    }
    (services.airflow.run_dir / "auth-statuses.json").write_text(json.dumps(statuses, indent=2))
    log.warning("auth statuses: %s", json.dumps(statuses, indent=2))
    assert statuses == {
        "no credentials": 401,
        "garbage bearer token": 403,
        "bearer token signed with another secret": 403,
        "garbage _token cookie": 403,
        "POST /auth/token with the right password": 201,
        "POST /auth/token with a wrong password": 401,
        "viewer bearer token": 200,
        "viewer _token cookie (the UI's)": 200,
        "op bearer token": 200,
        "admin bearer token": 200,
        "FastAPI's docs page of the dashboard app": 404,  # not served at all
        "the REST API, no credentials": 401,
        "the REST API, viewer": 200,
        "viewer triggers a run": 403,  # real roles: a viewer may read, not run
    }


def test_an_authenticated_user_gets_the_rendered_dashboard(airflow_services: AirflowServices,
                                                            celery_runs: CeleryRuns) -> None:
    reply = airflow_services.request("GET", DASHBOARD, user="researcher")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/html")
    assert reply.text.startswith("<!DOCTYPE html>")
    assert 'id="run-summary"' in reply.text


def login_status(services: AirflowServices, password: str) -> int:
    """Return the status of the researcher's login with ``password`` (201 created, 401 refused)."""
    return httpx.post(f"{services.url}/auth/token", json={"username": "researcher", "password": password},
                      timeout=60).status_code


def test_the_dashboard_renders_in_a_browser_with_the_uis_cookie(airflow_services: AirflowServices,
                                                                 celery_runs: CeleryRuns) -> None:
    executable = chromium()
    if executable is None:
        pytest.skip("chromium is not installed")
    url = f"{airflow_services.url}{DASHBOARD}"
    with headless_page(executable) as page:
        status = page.open(url, {"_token": airflow_services.token("researcher")})
        title = page.evaluate("document.querySelector('#run-summary h1').innerText")
        charts = page.evaluate("document.querySelectorAll('.js-plotly-plot .main-svg').length")
        page.screenshot(airflow_services.airflow.run_dir / "dashboard.png")
    with headless_page(executable) as page:
        anonymous = page.open(url, {})
        refusal = page.evaluate("document.body.innerText")
    assert (status, anonymous) == (200, 401)
    assert title and charts >= 1
    assert "Not authenticated" in refusal
