"""Manual runs the ways users trigger them, through the real api-server and CLI.

The session's monthly run was triggered through the REST API with ``"logical_date": null`` (the REST
API's own default, and what ``airflow dags trigger`` sends without ``--logical-date``): it has no data
interval in Airflow, and the pipeline ran it for the last complete calendar month before it was
triggered. The other ways create runs only (the DAG paused), which are deleted again: what they would
run is the same pipeline, deciding its month by the same rule (``tests/test_data_interval.py``).
"""

from __future__ import annotations

from contextlib import closing
from datetime import UTC, datetime

import pytest
from real_services import AirflowServices, CeleryRuns

from benchmarks._airflow import query
from flareflow.local.cli import DAG_ID

pytestmark = pytest.mark.services


def month_before(moment: datetime) -> tuple[datetime, datetime]:
    """Return the calendar month (UTC, the services' schedule timezone) before the one of ``moment``."""
    end = datetime(moment.year, moment.month, 1, tzinfo=UTC)
    start = datetime(end.year - 1, 12, 1, tzinfo=UTC) if end.month == 1 else datetime(end.year, end.month - 1, 1,
                                                                                       tzinfo=UTC)
    return start, end


def test_a_rest_run_without_a_logical_date_covers_the_last_complete_month(
    airflow_services: AirflowServices, celery_runs: CeleryRuns,
) -> None:
    services, run_id = airflow_services, celery_runs.monthly
    run = services.dag_run(run_id)
    assert (run["logical_date"], run["data_interval_start"], run["data_interval_end"], run["run_type"]) == (
        None, None, None, "manual")
    assert run["state"] == "success"
    start, end = month_before(datetime.fromisoformat(run["run_after"]))
    assert services.warehouse("SELECT data_interval_start, data_interval_end, status FROM runs WHERE run_id = %s",
                              run_id) == [(start, end, "success")]
    # its model is that month's, and the NVFlare steps (where it used to fail) bounded the data by its end
    ((version,),) = services.warehouse("SELECT calendar_version FROM model_versions WHERE run_id = %s"
                                       " AND retired_at IS NULL", run_id)
    assert version.startswith(f"{start:%Y.%m}.")
    with closing(services.airflow.metadata_db()) as conn:
        rendered = query(conn, "SELECT state FROM task_instance WHERE dag_id = %s AND run_id = %s"
                               " AND task_id IN ('check_data', 'federated_stats', 'federated_training',"
                               " 'federated_shap')", DAG_ID, run_id)
    assert [state for (state,) in rendered] == ["success"] * 4


def test_airflow_dags_trigger_and_the_ui_form_create_the_runs_the_rule_expects(
    airflow_services: AirflowServices, celery_runs: CeleryRuns,
) -> None:
    services = airflow_services
    services.set_paused(True)  # created, never run: the runs above showed what runs
    before = datetime.now(UTC)
    services.airflow.cli("dags", "trigger", DAG_ID)
    with closing(services.airflow.metadata_db()) as conn:
        ((cli_run,),) = query(conn, "SELECT run_id FROM dag_run WHERE dag_id = %s AND run_after >= %s",
                              DAG_ID, before)
    # the UI's trigger form: its logical date filled in (now), or cleared (null)
    with_date = services.trigger(datetime.now(UTC).isoformat())
    cleared = services.trigger(None)
    try:
        runs = {name: services.dag_run(run_id) for name, run_id in
                (("cli", cli_run), ("form with date", with_date), ("form cleared", cleared))}
        assert {name: (run["logical_date"] is None, run["data_interval_start"] is None)
                for name, run in runs.items()} == {
            "cli": (True, True), "form with date": (False, False), "form cleared": (True, True)}
        # with a logical date Airflow infers the schedule's period before it: the month the rule keeps
        interval = runs["form with date"]["data_interval_start"]
        assert interval[:7] == f"{month_before(datetime.now(UTC))[0]:%Y-%m}"
    finally:
        for run_id in (cli_run, with_date, cleared):
            services.delete_run(run_id)
