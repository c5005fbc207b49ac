"""Deferrable for real (issue 3, requirement 8): while an NVFlare job runs, its task holds no worker slot.

Airflow's real scheduler, dag-processor and triggerer run on the test stack with the LocalExecutor
limited to ONE worker slot, and a three-month backfill runs the whole DAG three times at once (small
jobs: 2 rounds, a short SHAP). A sampler reads, about every second, the NVFlare jobs' statuses and the
runs' task instance states (``benchmarks/_slots.py`` defines the measure). With one slot, several NVFlare
jobs can only run side by side if their tasks gave the slot back, i.e. were deferred to the triggerer.

The runs write to a warehouse database of their own and register under their own MLflow model name,
so the rest of the suite (which counts runs and calendar versions) sees none of them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from postgres_helpers import temporary_database

from benchmarks._airflow import one_slot_airflow
from benchmarks._slots import NVFLARE_TASKS, Outcome, backfill_and_measure
from benchmarks.deferral import report
from flareflow.local.stack import Stack

#: data months no other test runs (theirs cover 2026-06 … 2026-10); each run's logical date is its month's start
MONTHS = ("2026-03", "2026-04", "2026-05")
WAREHOUSE_CONN = "flareflow_deferral_warehouse"
SMALL_RUNS = {
    "rounds": 2,
    "config_overrides": {
        "federation": {"poll_interval_s": 1},
        "training": {"local_epochs": 1},
        "shap": {"samples": 20, "background_size": 5, "max_rows": 20},
        "warehouse": {"conn_id": WAREHOUSE_CONN},
        "mlflow": {"experiment": "flareflow-deferral-test", "registered_model": "flareflow-deferral-test"},
    },
}

log = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def outcome(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """Backfill three months at once on one worker slot; return the runs' states and the sampled figures."""
    run_dir: Path = tmp_path_factory.mktemp("deferral")
    with temporary_database(stack.database().base_url) as warehouse_url:
        connection = {f"AIRFLOW_CONN_{WAREHOUSE_CONN.upper()}": warehouse_url}
        with one_slot_airflow(stack, run_dir, slots=1, extra_env=connection) as airflow:
            outcome = backfill_and_measure(airflow, MONTHS, SMALL_RUNS, timeout_s=2400)
    lines = report(outcome, slots=1)
    (run_dir / "figures.txt").write_text("\n".join(lines) + "\n")
    log.info("deferral figures:\n%s", "\n".join(lines))
    return outcome


def test_every_run_of_the_backfill_succeeds(outcome: Outcome) -> None:
    assert len(outcome.run_ids) == len(MONTHS)
    assert outcome.states == {run_id: "success" for run_id in outcome.run_ids}


def test_one_worker_slot_was_all_airflow_had(outcome: Outcome) -> None:
    # the limit took effect: never two task processes at once (the scheduler may queue more, they wait)
    assert outcome.figures.max_running == 1


def test_every_nvflare_job_was_seen_running_and_belongs_to_a_task(outcome: Outcome) -> None:
    # the measure covers every job: one per NVFlare task and run, each sampled while RUNNING
    assert sorted(outcome.owners.values()) == sorted((run, task) for run in outcome.run_ids for task in NVFLARE_TASKS)
    assert outcome.figures.jobs_seen_running == set(outcome.owners)
    assert not outcome.figures.unowned_jobs


def test_nvflare_jobs_ran_side_by_side_while_their_tasks_were_deferred(outcome: Outcome) -> None:
    assert outcome.figures.max_concurrent_jobs >= 2
    assert outcome.figures.max_deferred_while_running >= 2


def test_no_task_held_the_slot_while_its_own_job_ran(outcome: Outcome) -> None:
    assert outcome.figures.max_slots_held_while_jobs_ran == 0
    for run_id in outcome.run_ids:
        run = outcome.figures.runs[run_id]
        assert run.slot_held_while_job_ran_s == 0
        assert run.deferred_while_job_ran_s == pytest.approx(run.job_running_s)


def test_the_slot_ran_other_tasks_while_jobs_ran(outcome: Outcome) -> None:
    # what deferral buys: the one slot kept working (other runs' steps, submits, fetches) meanwhile
    assert len(outcome.figures.tasks_run_while_jobs_ran) >= 2
