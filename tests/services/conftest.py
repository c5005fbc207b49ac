"""Fixtures of the real-services tests: Airflow's services with Celery workers, and the runs made on them.

``airflow_services`` (session) is the services of ``real_services.start_services`` on the session's
stack, with a second DAG bundle (``tests/services/dags/``: a DAG scheduled on the model asset); any
test may trigger runs on them through its REST helpers. ``celery_runs`` (session) is one monthly run
(triggered through the REST API without a logical date) and a two-month backfill with approval before
promotion (its ``dag_run_conf``), executed at once, sampled every second (the slot measure of
``benchmarks/_slots.py``), while an :class:`~approver.Approver` approves March's model and lets April's
time out; the DAG stays unpaused afterwards. ``model_consumer_runs`` (session, after them) pauses the
DAG and restarts the scheduler with its own cron on, which asset-triggered runs need: the model
consumer then runs on the events the three runs emitted.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PROJECT = str(Path(__file__).resolve().parents[2])
if PROJECT not in sys.path:  # the services and the slot measure come from the project's ``benchmarks``
    sys.path.insert(0, PROJECT)

from approver import Approver  # noqa: E402
from real_services import AirflowServices, CeleryRuns, start_services  # noqa: E402

from benchmarks._slots import run_and_measure  # noqa: E402
from benchmarks.deferral import report  # noqa: E402
from flareflow.local.stack import Stack  # noqa: E402

log = logging.getLogger(__name__)

#: the monthly run has no logical date: it covers the last complete month before it was triggered; the
#: backfill covers March and April. The services have a warehouse and registered model of their own.
#: set to keep the services' files (logs, figures, dashboard screenshot) after the session
KEEP_ENV = "FLAREFLOW_KEEP_SERVICES_FILES"
BACKFILL = ("2026-03", "2026-04")
#: the backfill's runs ask for approval before promotion; a tolerance that lets every version pass the
#: champion rule, so both wait for a person (March is approved, April left to time out after 30 s)
APPROVAL_CONF = {"config_overrides": {"mlflow": {"promotion": "approval", "champion_tolerance": 0.99,
                                                 "approval_timeout_s": 30}}}
TEST_DAGS = Path(__file__).resolve().parent / "dags"
CONSUMER_DAG_ID = "flareflow_model_consumer"
LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"
#: the project's DAG folder, and the tests' DAGs beside it
BUNDLES = [{"name": "dags-folder", "classpath": LOCAL_BUNDLE, "kwargs": {}},
           {"name": "flareflow-tests", "classpath": LOCAL_BUNDLE, "kwargs": {"path": str(TEST_DAGS)}}]


@pytest.fixture(scope="session")
def airflow_services(stack: Stack) -> Iterator[AirflowServices]:
    """Bring up scheduler, dag-processor, triggerer, api-server and two Celery workers for the session."""
    # not pytest's tmp_path: the stack's unprivileged postgres user never reads it, but the services'
    # files must outlive any pytest session started meanwhile (it resets /tmp/pytest-of-root)
    root = Path(tempfile.mkdtemp(prefix="flareflow-services-"))
    try:
        bundles = {"AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(BUNDLES)}
        with start_services(stack, root, bundles) as services:
            yield services
    finally:
        if os.environ.get(KEEP_ENV):
            log.warning("kept the services' files in %s", root)
        else:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def celery_runs(airflow_services: AirflowServices) -> CeleryRuns:
    """Trigger a monthly run and backfill two months through the REST API, run all three at once, measure.

    The monthly run has no logical date (``"logical_date": null``); the backfill asks for approval
    before promotion, answered meanwhile by an :class:`Approver`. The model consumer is unpaused first,
    so the runs' model events are queued for it.
    """
    services = airflow_services
    services.wait_for_dag(CONSUMER_DAG_ID)
    services.set_paused(False, CONSUMER_DAG_ID)
    monthly = services.trigger(None)
    backfilled = services.backfill(*BACKFILL, conf=APPROVAL_CONF)
    run_ids = [*backfilled, monthly]
    approver = Approver(services, approve_run=backfilled[0])
    approver.start()
    try:
        outcome = run_and_measure(services.airflow, run_ids, lambda: services.set_paused(False), timeout_s=2400)
    finally:
        approver.halt()
    runs = CeleryRuns(monthly, backfilled, outcome, services.task_instances(run_ids), services.executions(run_ids),
                      services.data_months(run_ids), approver.seen, approver.answered)
    lines = [*report(outcome, slots=services.airflow.slots),
             f"task_instances_per_worker={dict(sorted(runs.tasks_per_worker().items()))}",
             f"executions_per_worker={dict(sorted(runs.executions_per_worker().items()))}"]
    (services.airflow.run_dir / "celery-figures.txt").write_text("\n".join(lines) + "\n")
    log.warning("Celery run figures:\n%s", "\n".join(lines))
    return runs


@pytest.fixture(scope="session")
def model_consumer_runs(airflow_services: AirflowServices, celery_runs: CeleryRuns) -> list[dict[str, Any]]:
    """Return the model consumer's runs, created by the scheduler from the Celery runs' model events.

    The services' scheduler runs without its own cron (no run of the pipeline's schedule may start
    beside the measured ones), and it creates asset-triggered runs only with it. So the pipeline's DAG
    is paused (its cron would start the schedule's latest month) and the scheduler restarted with it on.
    """
    services = airflow_services
    services.set_paused(True)
    services.restart_scheduler({"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True"})
    deadline = time.monotonic() + 600
    while True:
        runs = services.api("GET", f"/dags/{CONSUMER_DAG_ID}/dagRuns")["dag_runs"]
        if runs and all(run["state"] in ("success", "failed") for run in runs):
            return [{**run, "xcom": _returned(services, run["dag_run_id"])} for run in runs]
        services.airflow.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"no finished run of {CONSUMER_DAG_ID} after 600 s: {runs}")
        time.sleep(3)


def _returned(services: AirflowServices, run_id: str) -> Any:
    """Return what the model consumer's task returned in a run (its XCom, as stored: JSON)."""
    value = services.api("GET", f"/dags/{CONSUMER_DAG_ID}/dagRuns/{run_id}/taskInstances/read_new_models/"
                                "xcomEntries/return_value")["value"]
    return json.loads(value) if isinstance(value, str) else value
