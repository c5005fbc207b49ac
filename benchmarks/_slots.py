"""Watch worker slots and NVFlare jobs while DAG runs execute; say who held a slot while its job ran.

Shared by ``benchmarks/deferral.py`` and ``tests/services/``. A :class:`SlotSampler` thread takes a
:class:`Sample` about every second: first every NVFlare job's status (Flare admin API), then every
task instance state of the watched runs (Airflow's metadata database). Reading the jobs first means a
task counted as holding a slot while its job ran really held it after the job was seen running.

After the runs, :func:`job_owners` maps each NVFlare job to the task that submitted it (the job id in
that task's XCom) and :func:`measure` computes the figures:

- a task instance *holds a worker slot* while it is ``queued`` or ``running`` (the LocalExecutor counts
  a task against its parallelism from the moment it is queued to it until the task process ends; with
  the CeleryExecutor a queued task waits in the broker for a worker process, counted all the same);
- an NVFlare task *holds a slot while its job ran* when, in one sample, its own job is ``RUNNING`` and
  the task holds a slot. Submitting happens before the job runs and fetching the result after it ended,
  so a deferrable operator scores 0 here, and one that polled in its worker would score 1 per job.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

from nvflare.fuel.flare_api.flare_api import Session

from benchmarks._airflow import Airflow, backfill, query, wait_for_runs
from flareflow.hooks.nvflare import abort_job, is_terminal, list_jobs, open_session
from flareflow.local.cli import DAG_ID
from flareflow.local.poc import ADMIN_USER

log = logging.getLogger(__name__)

NVFLARE_TASKS = ("check_data", "federated_stats", "federated_training", "federated_shap")
SLOT_STATES = ("queued", "running")
JOB_RUNNING = "RUNNING"

#: a task instance of one run: (run_id, task_id)
TaskKey = tuple[str, str]


@dataclass(frozen=True)
class Sample:
    """What ran at one moment: NVFlare job statuses, then task instance states.

    :param at: seconds since the sampler started
    :param jobs: NVFlare job id -> status (jobs submitted since the sampler started)
    :param tasks: (run id, task id) -> task instance state (None before the scheduler created it)
    """

    at: float
    jobs: Mapping[str, str]
    tasks: Mapping[TaskKey, str | None]


class SlotSampler(threading.Thread):
    """Sample NVFlare jobs and task instances of some DAG runs until stopped.

    :param airflow: the services whose stack's federation and whose metadata database are watched
    :param run_ids: the DAG runs whose task instances are sampled
    :param interval_s: the pause between samples
    """

    def __init__(self, airflow: Airflow, run_ids: Sequence[str], interval_s: float = 1.0) -> None:
        super().__init__(name="slot-sampler", daemon=True)
        self.airflow = airflow
        self.run_ids = list(run_ids)
        self.interval_s = interval_s
        self.samples: list[Sample] = []
        self.error: BaseException | None = None
        self._halted = threading.Event()  # not ``_stop``: that name is Thread's own method
        self._session: Session = open_session(str(airflow.stack.poc().admin_kit), ADMIN_USER, attempts=5)
        self._known_jobs = set(list_jobs(self._session))

    def new_jobs(self) -> dict[str, str]:
        """Return the status of every NVFlare job submitted since the sampler was made."""
        return {job_id: status for job_id, status in list_jobs(self._session).items()
                if job_id not in self._known_jobs}

    def run(self) -> None:
        started = time.monotonic()
        try:
            with closing(self.airflow.metadata_db()) as conn:
                while not self._halted.is_set():
                    jobs = self.new_jobs()
                    rows = query(conn, "SELECT run_id, task_id, state FROM task_instance "
                                       "WHERE dag_id = %s AND run_id = ANY(%s)", DAG_ID, self.run_ids)
                    tasks = {(run_id, task_id): state for run_id, task_id, state in rows}
                    self.samples.append(Sample(time.monotonic() - started, jobs, tasks))
                    self._halted.wait(self.interval_s)
        except BaseException as err:  # reported by stop(): a sampler that died must fail the measurement
            self.error = err

    def halt(self) -> None:
        """Stop sampling (idempotent)."""
        self._halted.set()
        if self.is_alive():
            self.join(timeout=60)

    def stop(self) -> list[Sample]:
        """Stop sampling; return the samples (raise what ended the sampler early)."""
        self.halt()
        if self.error is not None:
            raise RuntimeError("the slot sampler failed") from self.error
        return self.samples

    def close(self) -> None:
        """Close the admin session."""
        self._session.close()

    def abort_unfinished(self) -> list[str]:
        """Abort the NVFlare jobs submitted meanwhile that still run; return their ids."""
        aborted = []
        for job_id, status in self.new_jobs().items():
            if not is_terminal(status) and abort_job(self._session, job_id):
                aborted.append(job_id)
        if aborted:
            log.warning("aborted NVFlare jobs left running: %s", aborted)
        return aborted


def _job_id(value: Any) -> str | None:
    """Return the ``job_id`` of an NVFlareJobOperator XCom, however the metadata database stored it."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if isinstance(value, dict):
        if "job_id" in value:
            return str(value["job_id"])
        if "__var" in value:  # the Task SDK's serde wrapper
            return _job_id(value["__var"])
    return None


def job_owners(airflow: Airflow, run_ids: Sequence[str]) -> dict[str, TaskKey]:
    """Return NVFlare job id -> the (run, task) that submitted it, from the NVFlare tasks' XComs."""
    with closing(airflow.metadata_db()) as conn:
        rows = query(conn, "SELECT run_id, task_id, value FROM xcom WHERE dag_id = %s AND run_id = ANY(%s) "
                           "AND task_id = ANY(%s) AND key = 'return_value'", DAG_ID, list(run_ids),
                     list(NVFLARE_TASKS))
    owners = {}
    for run_id, task_id, value in rows:
        job_id = _job_id(value)
        if job_id:
            owners[job_id] = (run_id, task_id)
    return owners


@dataclass
class RunFigures:
    """One run's NVFlare jobs: how long they ran and what their tasks did meanwhile (seconds)."""

    run_id: str
    job_running_s: float = 0.0
    deferred_while_job_ran_s: float = 0.0
    slot_held_while_job_ran_s: float = 0.0


@dataclass
class Figures:
    """What the samples show.

    :param samples: how many samples were taken
    :param max_concurrent_jobs: most NVFlare jobs ``RUNNING`` at once
    :param max_deferred_while_running: most jobs ``RUNNING`` at once whose own tasks were all deferred
    :param max_slots_held_while_jobs_ran: most NVFlare tasks holding a slot while their own job ran
    :param max_slots_in_use: most task instances ``queued`` or ``running`` at once (any task); the scheduler
        may queue more than ``parallelism`` of them, they then wait in the executor for its worker
    :param max_running: most task instances ``running`` at once (a task process executing in a worker)
    :param tasks_run_while_jobs_ran: task instances seen ``running`` while some NVFlare job ran
    :param jobs_seen_running: NVFlare jobs seen ``RUNNING`` in at least one sample
    :param unowned_jobs: NVFlare jobs seen running that no watched task's XCom names
    :param runs: per-run figures
    """

    samples: int = 0
    max_concurrent_jobs: int = 0
    max_deferred_while_running: int = 0
    max_slots_held_while_jobs_ran: int = 0
    max_slots_in_use: int = 0
    max_running: int = 0
    tasks_run_while_jobs_ran: set[TaskKey] = field(default_factory=set)
    jobs_seen_running: set[str] = field(default_factory=set)
    unowned_jobs: set[str] = field(default_factory=set)
    runs: dict[str, RunFigures] = field(default_factory=dict)


def measure(samples: Sequence[Sample], owners: Mapping[str, TaskKey], run_ids: Sequence[str]) -> Figures:
    """Compute the figures from the samples; each sample stands for the time until the next one.

    :param samples: the sampler's samples, in order
    :param owners: NVFlare job id -> (run, task) that submitted it (see :func:`job_owners`)
    :param run_ids: the watched runs
    """
    figures = Figures(samples=len(samples), runs={run_id: RunFigures(run_id) for run_id in run_ids})
    for index, sample in enumerate(samples):
        span = samples[index + 1].at - sample.at if index + 1 < len(samples) else 0.0
        running_jobs = [job_id for job_id, status in sample.jobs.items() if status == JOB_RUNNING]
        figures.jobs_seen_running.update(running_jobs)
        figures.unowned_jobs.update(job_id for job_id in running_jobs if job_id not in owners)
        deferred = held = 0
        for job_id in running_jobs:
            if job_id not in owners:
                continue
            run_id, task_id = owners[job_id]
            state = sample.tasks.get((run_id, task_id))
            run = figures.runs[run_id]
            run.job_running_s += span
            if state == "deferred":
                deferred += 1
                run.deferred_while_job_ran_s += span
            elif state in SLOT_STATES:
                held += 1
                run.slot_held_while_job_ran_s += span
        figures.max_concurrent_jobs = max(figures.max_concurrent_jobs, len(running_jobs))
        figures.max_deferred_while_running = max(figures.max_deferred_while_running, deferred)
        figures.max_slots_held_while_jobs_ran = max(figures.max_slots_held_while_jobs_ran, held)
        in_slots = [key for key, state in sample.tasks.items() if state in SLOT_STATES]
        figures.max_slots_in_use = max(figures.max_slots_in_use, len(in_slots))
        figures.max_running = max(figures.max_running, sum(sample.tasks[key] == "running" for key in in_slots))
        if running_jobs:
            figures.tasks_run_while_jobs_ran.update(key for key in in_slots if sample.tasks[key] == "running")
    return figures


@dataclass
class Outcome:
    """Runs executed at once on few worker slots, and what the sampler saw meanwhile.

    :param run_ids: the runs, oldest data month first
    :param states: run id -> final state
    :param run_wall_s: run id -> seconds from its start to its end
    :param wall_s: seconds from unpausing the DAG until every run had ended
    :param owners: NVFlare job id -> the (run, task) that submitted it
    :param figures: the slot and job figures
    """

    run_ids: list[str]
    states: dict[str, str]
    run_wall_s: dict[str, float]
    wall_s: float
    owners: dict[str, TaskKey]
    figures: Figures


def _run_walls(airflow: Airflow, run_ids: Sequence[str]) -> dict[str, float]:
    with closing(airflow.metadata_db()) as conn:
        rows = query(conn, "SELECT run_id, EXTRACT(EPOCH FROM end_date - start_date) FROM dag_run "
                           "WHERE dag_id = %s AND run_id = ANY(%s)", DAG_ID, list(run_ids))
    return {run_id: float(seconds or 0) for run_id, seconds in rows}


def run_and_measure(
    airflow: Airflow, run_ids: Sequence[str], start: Callable[[], object], *, timeout_s: float,
    interval_s: float = 1.0,
) -> Outcome:
    """Start runs that wait (their DAG paused) and sample until every one has ended.

    NVFlare jobs still running when this returns or raises (a timeout, a dead service) are aborted.

    :param airflow: running services (see ``benchmarks._airflow.running``)
    :param run_ids: the runs, created while the DAG was paused, oldest data month first
    :param start: what lets them run, e.g. unpausing the DAG; called once the sampler watches
    :param timeout_s: how long the runs may take together
    :param interval_s: the pause between samples
    """
    sampler = SlotSampler(airflow, run_ids, interval_s)
    try:
        sampler.start()
        started = time.monotonic()
        start()
        states = wait_for_runs(airflow, run_ids, timeout_s)
        wall_s = time.monotonic() - started
        samples = sampler.stop()
    finally:
        try:
            sampler.halt()
            sampler.abort_unfinished()
        finally:
            sampler.close()
    owners = job_owners(airflow, run_ids)
    figures = measure(samples, owners, run_ids)
    return Outcome(list(run_ids), states, _run_walls(airflow, run_ids), wall_s, owners, figures)


def backfill_and_measure(
    airflow: Airflow, months: Sequence[str], conf: Mapping[str, Any], *, timeout_s: float, interval_s: float = 1.0,
) -> Outcome:
    """Backfill ``months`` at once on the services' worker slots, sampling until every run has ended.

    :param airflow: running services (see ``benchmarks._airflow.one_slot_airflow``)
    :param months: the data months ``YYYY-MM``, consecutive, oldest first
    :param conf: the runs' conf
    :param timeout_s: how long the runs may take together
    :param interval_s: the pause between samples
    """
    run_ids = backfill(airflow, months, conf)
    return run_and_measure(airflow, run_ids, lambda: airflow.cli("dags", "unpause", DAG_ID), timeout_s=timeout_s,
                           interval_s=interval_s)
