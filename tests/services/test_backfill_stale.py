"""``airflow flareflow backfill-stale``: exactly the months computed with another config get a run.

After the session's runs, March and April were computed with the approval overrides of the backfill's
``dag_run_conf`` (a config fingerprint other than the config folder's), the monthly run with the
config folder as it is. The command is run as a user would, with the services' environment; the DAG
is paused, so the runs it creates are only created (the pipeline they run is the one the session ran),
then deleted.
"""

from __future__ import annotations

from contextlib import closing
from datetime import UTC, datetime

import pytest
from real_services import AirflowServices, CeleryRuns

from benchmarks._airflow import query
from flareflow.local.cli import DAG_ID

pytestmark = pytest.mark.services


def test_backfill_stale_triggers_one_run_per_stale_month_and_no_other(
    airflow_services: AirflowServices, celery_runs: CeleryRuns,
) -> None:
    services = airflow_services
    march, april = celery_runs.backfilled
    current = {fingerprint for (fingerprint,) in services.warehouse(
        "SELECT config_fingerprint FROM runs WHERE run_id = %s", celery_runs.monthly)}
    stale = {fingerprint for (fingerprint,) in services.warehouse(
        "SELECT config_fingerprint FROM runs WHERE run_id = ANY(%s)", [march, april])}
    assert len(current) == len(stale) == 1 and current != stale
    services.set_paused(True)
    before = datetime.now(UTC)
    output = services.airflow.cli("flareflow", "backfill-stale")
    assert "2 month(s) computed with a config other than the current one" in output
    assert f"2026-03  run {march}" in output and f"2026-04  run {april}" in output
    assert celery_runs.data_months[celery_runs.monthly] not in output
    with closing(services.airflow.metadata_db()) as conn:
        created = query(conn, "SELECT run_id, conf, logical_date FROM dag_run WHERE dag_id = %s AND run_after >= %s"
                              " ORDER BY run_id", DAG_ID, before)
    try:
        assert [(conf, logical_date) for _, conf, logical_date in created] == [
            ({"data_month": "2026-03"}, None), ({"data_month": "2026-04"}, None)]
        for run_id, conf, _ in created:
            assert f"triggered {DAG_ID} run {run_id} for {conf['data_month']}" in output
    finally:
        for run_id, _, _ in created:
            services.delete_run(run_id)
