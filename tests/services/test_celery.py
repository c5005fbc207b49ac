"""The pipeline on the CeleryExecutor, and deferrable for real: NVFlare tasks hold no worker slot.

Airflow's real scheduler, dag-processor, triggerer and api-server run on the test stack with the
CeleryExecutor, a Redis broker, the result backend in PostgreSQL and two Celery workers of one task
process each (``worker-a`` and ``worker-b``, told apart by ``hostname_callable``). A monthly run
triggered through the REST API (without a logical date) and a two-month backfill (with approval before
promotion) run at once (small jobs: 2 rounds, a short SHAP). A sampler reads, about every second, the
NVFlare jobs' statuses and the runs' task instance states (``benchmarks/_slots.py`` defines the measure).
With two slots, three NVFlare jobs can only run side by side if their tasks gave their slots back, i.e.
were deferred to the triggerer.
"""

from __future__ import annotations

import pytest
from real_services import WORKER_SLOTS, WORKERS, AirflowServices, CeleryRuns

from benchmarks._slots import NVFLARE_TASKS

pytestmark = pytest.mark.services

WORKER_NAMES = {"worker-a", "worker-b"}


def test_the_monthly_run_and_the_backfill_succeed(celery_runs: CeleryRuns, airflow_services: AirflowServices) -> None:
    outcome = celery_runs.outcome
    run_after = airflow_services.dag_run(celery_runs.monthly)["run_after"]
    year, month = int(run_after[:4]), int(run_after[5:7])  # the month before the one it was triggered in
    last_month = f"{year - 1}-12" if month == 1 else f"{year}-{month - 1:02d}"
    assert [celery_runs.data_months[run_id] for run_id in [*celery_runs.backfilled, celery_runs.monthly]] == [
        "2026-03", "2026-04", last_month]
    assert outcome.states == {run_id: "success" for run_id in [*celery_runs.backfilled, celery_runs.monthly]}
    states = {(ti["run_id"], ti["task_id"]): ti["state"] for ti in celery_runs.task_instances}
    assert {state for (_, task), state in states.items() if task not in ("discard_failed_run", "approve_promotion")
            } == {"success"}
    # the approval step ran where approval was asked for, and was skipped in the automatic monthly run
    assert [states[(run, "approve_promotion")] for run in [*celery_runs.backfilled, celery_runs.monthly]] == [
        "success", "success", "skipped"]


def test_every_task_ran_on_a_celery_worker_and_both_workers_worked(celery_runs: CeleryRuns) -> None:
    ran = [ti for ti in celery_runs.task_instances if ti["state"] == "success"]
    # eight steps per run, and the two backfilled runs' approval; discard_failed_run is skipped
    assert len(ran) == 3 * 8 + 2
    assert {ti["hostname"] for ti in ran} <= WORKER_NAMES
    per_worker = celery_runs.tasks_per_worker()
    assert set(per_worker) == WORKER_NAMES, per_worker
    assert sum(per_worker.values()) == len(ran)
    # every start of a task (a deferred one starts again to fetch its result) was on one of the workers
    executions = celery_runs.executions_per_worker()
    assert set(executions) == WORKER_NAMES, executions
    assert sum(executions.values()) >= len(ran) + 3 * len(NVFLARE_TASKS)


def test_never_more_tasks_ran_than_the_workers_have_processes(celery_runs: CeleryRuns) -> None:
    assert celery_runs.outcome.figures.max_running <= WORKERS * WORKER_SLOTS


def test_every_nvflare_job_was_seen_running_and_belongs_to_a_task(celery_runs: CeleryRuns) -> None:
    outcome = celery_runs.outcome
    assert sorted(outcome.owners.values()) == sorted((run, task) for run in outcome.run_ids for task in NVFLARE_TASKS)
    assert outcome.figures.jobs_seen_running == set(outcome.owners)
    assert not outcome.figures.unowned_jobs


def test_nvflare_jobs_of_different_runs_ran_side_by_side_while_their_tasks_were_deferred(
    celery_runs: CeleryRuns,
) -> None:
    assert celery_runs.outcome.figures.max_concurrent_jobs >= 2
    assert celery_runs.outcome.figures.max_deferred_while_running >= 2


def test_no_task_held_a_worker_slot_while_its_own_job_ran(celery_runs: CeleryRuns) -> None:
    figures = celery_runs.outcome.figures
    assert figures.max_slots_held_while_jobs_ran == 0
    for run_id in celery_runs.outcome.run_ids:
        run = figures.runs[run_id]
        assert run.job_running_s > 0
        assert run.slot_held_while_job_ran_s == 0
        assert run.deferred_while_job_ran_s == pytest.approx(run.job_running_s)


def test_the_workers_ran_other_tasks_while_jobs_ran(celery_runs: CeleryRuns) -> None:
    # what deferral buys: the slots kept working (other runs' steps, submits, fetches) meanwhile
    assert len(celery_runs.outcome.figures.tasks_run_while_jobs_ran) >= 2
