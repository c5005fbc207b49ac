"""The pipeline's outputs as assets: every run's events with their extras, and a DAG scheduled on the model.

``tests/services/dags/model_consumer.py`` is scheduled on ``flareflow.model``; it was unpaused before the
session's three runs, and the scheduler (restarted with its own cron on, the pipeline's DAG paused)
created its runs from their model events.
"""

from __future__ import annotations

import pytest
from real_services import AirflowServices, CeleryRuns

from flareflow.local.cli import DAG_ID

pytestmark = pytest.mark.services

OUTPUTS = {"flareflow.statistics", "flareflow.model", "flareflow.dashboard"}


def events_by_run(services: AirflowServices) -> dict[str, dict[str, dict]]:
    """Return run id -> asset name -> that run's event extra, from the REST API."""
    found: dict[str, dict[str, dict]] = {}
    for event in services.api("GET", "/assets/events", params={"source_dag_id": DAG_ID, "limit": 100})["asset_events"]:
        found.setdefault(event["source_run_id"], {})[event["name"]] = event["extra"]
    return found


def test_every_run_emitted_its_statistics_model_and_dashboard_with_extras(
    airflow_services: AirflowServices, celery_runs: CeleryRuns,
) -> None:
    services, events = airflow_services, events_by_run(airflow_services)
    for run_id in [*celery_runs.backfilled, celery_runs.monthly]:
        assert set(events[run_id]) == OUTPUTS, run_id
        ((fingerprint, sites),) = services.warehouse("SELECT config_fingerprint, sites FROM runs WHERE run_id = %s",
                                                     run_id)
        ((version, mlflow_version, role),) = services.warehouse(
            "SELECT calendar_version, mlflow_version, role FROM model_versions WHERE run_id = %s"
            " AND retired_at IS NULL", run_id)
        month = celery_runs.data_months[run_id]
        statistics, model = events[run_id]["flareflow.statistics"], events[run_id]["flareflow.model"]
        assert statistics == {"run_id": run_id, "data_month": month, "config_fingerprint": fingerprint,
                              "sites": sites}
        assert (model["calendar_version"], model["mlflow_version"], model["config_fingerprint"], model["role"]) == (
            version, mlflow_version, fingerprint, role)
        assert model["model_uri"] == f"models:/{model['registered_model']}/{mlflow_version}"
        assert model["data_month"] == month and version.startswith(month.replace("-", "."))
        dashboard = events[run_id]["flareflow.dashboard"]
        assert (dashboard["run_id"], dashboard["url_path"]) == (run_id, "/flareflow/")
        assert dashboard["path"].endswith("dashboard/index.html")
    # the approved version's event carries the decision taken after the answer
    assert events[celery_runs.backfilled[0]]["flareflow.model"]["approval"] == "approved"


def test_a_dag_scheduled_on_the_model_asset_ran_on_the_new_models(
    model_consumer_runs: list[dict], celery_runs: CeleryRuns, airflow_services: AirflowServices,
) -> None:
    assert model_consumer_runs
    assert {(run["state"], run["run_type"]) for run in model_consumer_runs} == {("success", "asset_triggered")}
    # a run consumes the events queued until the scheduler created it (here at least the first model's:
    # the queue was created with it, the later ones joined it while the scheduler made no runs)
    seen = [model for run in model_consumer_runs for model in run["xcom"]]
    assert seen
    events = events_by_run(airflow_services)
    for model in seen:
        assert model["source_run_id"] in [*celery_runs.backfilled, celery_runs.monthly]
        assert model == {**events[model["source_run_id"]]["flareflow.model"], "source_run_id": model["source_run_id"]}
