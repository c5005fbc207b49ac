"""Fixtures of the real-services tests: Airflow's services with Celery workers, and the runs made on them.

``airflow_services`` (session) is the services of ``real_services.start_services`` on the session's
stack; any test may trigger runs on them through its REST helpers. ``celery_runs`` (session) is one
monthly run and a two-month backfill executed at once on them, sampled every second (the slot measure
of ``benchmarks/_slots.py``); the DAG stays unpaused afterwards.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT = str(Path(__file__).resolve().parents[2])
if PROJECT not in sys.path:  # the services and the slot measure come from the project's ``benchmarks``
    sys.path.insert(0, PROJECT)

from real_services import AirflowServices, CeleryRuns, start_services  # noqa: E402

from benchmarks._slots import run_and_measure  # noqa: E402
from benchmarks.deferral import report  # noqa: E402
from flareflow.local.stack import Stack  # noqa: E402

log = logging.getLogger(__name__)

#: the monthly run covers May 2026 (its logical date is the next month's start, as the schedule's);
#: the backfill covers March and April. No other test runs these data months (theirs: 2026-06 … 2026-10).
#: set to keep the services' files (logs, figures, dashboard screenshot) after the session
KEEP_ENV = "FLAREFLOW_KEEP_SERVICES_FILES"
MONTHLY_RUN_AT = "2026-06-01T03:00:00+00:00"
BACKFILL = ("2026-03", "2026-04")


@pytest.fixture(scope="session")
def airflow_services(stack: Stack) -> Iterator[AirflowServices]:
    """Bring up scheduler, dag-processor, triggerer, api-server and two Celery workers for the session."""
    # not pytest's tmp_path: the stack's unprivileged postgres user never reads it, but the services'
    # files must outlive any pytest session started meanwhile (it resets /tmp/pytest-of-root)
    root = Path(tempfile.mkdtemp(prefix="flareflow-services-"))
    try:
        with start_services(stack, root) as services:
            yield services
    finally:
        if os.environ.get(KEEP_ENV):
            log.warning("kept the services' files in %s", root)
        else:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def celery_runs(airflow_services: AirflowServices) -> CeleryRuns:
    """Trigger a monthly run and backfill two months through the REST API, run all three at once, measure."""
    services = airflow_services
    monthly = services.trigger(MONTHLY_RUN_AT)
    backfilled = services.backfill(*BACKFILL)
    run_ids = [*backfilled, monthly]
    outcome = run_and_measure(services.airflow, run_ids, lambda: services.set_paused(False), timeout_s=2400)
    runs = CeleryRuns(monthly, backfilled, outcome, services.task_instances(run_ids), services.executions(run_ids),
                      services.data_months(run_ids))
    lines = [*report(outcome, slots=services.airflow.slots),
             f"task_instances_per_worker={dict(sorted(runs.tasks_per_worker().items()))}",
             f"executions_per_worker={dict(sorted(runs.executions_per_worker().items()))}"]
    (services.airflow.run_dir / "celery-figures.txt").write_text("\n".join(lines) + "\n")
    log.warning("Celery run figures:\n%s", "\n".join(lines))
    return runs
