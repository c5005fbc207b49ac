"""Run the DAG on a local stack the way production does: Airflow's real services, as processes.

Shared by ``benchmarks/deferral.py`` and the real-services tests (``tests/services/``). An
:class:`Airflow` is Airflow's scheduler, dag-processor, triggerer and api-server on a running
:class:`~flareflow.local.stack.Stack`, and either

- the LocalExecutor limited to a number of worker slots (``core.parallelism``), with an api-server
  serving only the Execution API (in Airflow 3 a task runs through that API; the scheduler's default
  ``http://localhost:8080/execution/`` is the developer's own), or
- the CeleryExecutor with Celery workers (:mod:`flareflow.local.workers`) on a Redis broker, the
  result backend in the metadata database.

Every port is free (the api-server's, the log servers'), never a developer's 8080/8793/8794.
:func:`running` starts the services and stops them again, pausing the DAG and ending whatever its runs
left unfinished. Nothing here changes how the pipeline runs: the DAG, its operators and the stack's
connections are the product's; only the executor, slot count and the scheduler's own cron runs (off)
differ.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2.extensions import connection as Connection

from flareflow.local import processes
from flareflow.local.cli import DAG_ID
from flareflow.local.poc import DEFAULT_PORT
from flareflow.local.processes import Service
from flareflow.local.stack import Stack
from flareflow.local.workers import Worker, celery_env

log = logging.getLogger(__name__)

#: the states a DAG run or task instance never leaves by itself
FINISHED = ("success", "failed", "skipped", "upstream_failed", "removed")
SERVICES = ("scheduler", "dag-processor", "triggerer")
#: ports a developer's own stack uses: the NVFlare POC's, Airflow's api-server and log servers
RESERVED_PORTS = (DEFAULT_PORT, DEFAULT_PORT + 1, 8080, 8793, 8794)


def free_port() -> int:
    """Return a free TCP port on localhost other than the ones a developer's own stack uses."""
    return processes.free_port(avoid=RESERVED_PORTS)


def connect_db(url: str) -> Connection:
    """Return an autocommit connection to a PostgreSQL database."""
    conn = psycopg2.connect(url)
    conn.autocommit = True
    return conn


def query(conn: Connection, sql: str, *params: object) -> list[tuple[Any, ...]]:
    """Run one statement and return its rows (none for statements without a result)."""
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


@dataclass
class Airflow:
    """Airflow's services on a stack: LocalExecutor with few slots, or CeleryExecutor with workers.

    :param stack: a running local stack (PostgreSQL, MLflow, NVFlare POC, migrated metadata database)
    :param run_dir: where the services' pid and log files, task logs and the pipeline's work files go
    :param slots: the scheduler's slots (``core.parallelism``): the LocalExecutor's worker processes
    :param extra_env: further variables of every Airflow process (connections, settings)
    :param workers: Celery workers; none means the LocalExecutor
    :param broker_url: the workers' Redis broker (with workers only)
    :param metadata_url: Airflow's metadata database (default: the stack's ``flareflow_airflow``); it is
        also the Celery result backend
    :param api_apps: what the api-server serves: ``execution`` (tasks only) or ``all`` (UI and REST API too)
    """

    stack: Stack
    run_dir: Path
    slots: int = 1
    extra_env: Mapping[str, str] = field(default_factory=dict)
    workers: Sequence[Worker] = ()
    broker_url: str = ""
    metadata_url: str = ""
    api_apps: str = "execution"
    api_port: int = field(default_factory=free_port)
    worker_log_port: int = field(default_factory=free_port)
    trigger_log_port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        if self.workers and not self.broker_url:
            raise ValueError("Celery workers need a broker_url")

    @property
    def database_url(self) -> str:
        """Return the metadata database's URL (psycopg2 form)."""
        return self.metadata_url or self.stack.database().url("flareflow_airflow")

    @property
    def api_url(self) -> str:
        """Return the api-server's base URL."""
        return f"http://127.0.0.1:{self.api_port}"

    def metadata_db(self) -> Connection:
        """Return an autocommit connection to the services' metadata database."""
        return connect_db(self.database_url)

    def env(self) -> dict[str, str]:
        """Return the environment of every Airflow process: the stack's, with the executor's settings."""
        env = {
            **self.stack.env(),
            "FLAREFLOW_WORK_DIR": str(self.run_dir / "work"),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.run_dir / "logs"),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.worker_log_port),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.trigger_log_port),
            "AIRFLOW__CORE__PARALLELISM": str(self.slots),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            # runs come from backfills or triggers only, never from the cron schedule of a shared DAG
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        }
        if self.metadata_url:
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = self.metadata_url.replace(
                "postgresql://", "postgresql+psycopg2://", 1)
        if self.workers:
            env.update(celery_env(self.broker_url, self.database_url, max(w.concurrency for w in self.workers)))
        return {**env, **self.extra_env}

    def services(self) -> list[tuple[Service, dict[str, str]]]:
        """Return every process with its environment: api-server, scheduler, dag-processor, triggerer, workers."""
        env = self.env()
        airflow = str(Path(sys.executable).with_name("airflow"))
        api = [airflow, "api-server", "--apps", self.api_apps, "--host", "127.0.0.1", "--port", str(self.api_port),
               "--workers", "1"]
        named = [Service("airflow-api-server", api, self.run_dir),
                 *(Service(f"airflow-{name}", [airflow, name], self.run_dir) for name in SERVICES)]
        return [*((service, env) for service in named),
                *((worker.service(), worker.env(env)) for worker in self.workers)]

    def start(self) -> None:
        """Start every service (already running ones are left alone)."""
        for service, env in self.services():
            service.start(env, cwd=self.stack.project)

    def stop(self) -> list[str]:
        """Stop every service this object started, all at once (each gets its grace period); return their names."""
        services = [service for service, _ in self.services()]
        with ThreadPoolExecutor(max_workers=len(services)) as pool:
            stopped = list(pool.map(Service.stop, services))
        return [service.name for service, was_running in zip(services, stopped, strict=True) if was_running]

    def check_alive(self) -> None:
        """Raise with its log's end when a service has died."""
        for service, _ in self.services():
            if service.pid() is None:
                raise RuntimeError(f"{service.name} is not running:\n{service.log_tail()}")

    def cli(self, *args: str, timeout_s: float = 300) -> str:
        """Run an Airflow command with the services' environment; return its output or raise with it."""
        airflow = str(Path(sys.executable).with_name("airflow"))
        result = subprocess.run([airflow, *args], env=self.env(), cwd=self.stack.project, capture_output=True,
                                text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result.stdout

    def wait_for_dag(self, timeout_s: float = 300) -> None:
        """Wait until the dag-processor has parsed the DAG into the metadata database."""
        deadline = time.monotonic() + timeout_s
        with closing(self.metadata_db()) as conn:
            while True:
                self.check_alive()
                rows = query(conn, "SELECT 1 FROM dag d JOIN serialized_dag s ON s.dag_id = d.dag_id "
                                   "WHERE d.dag_id = %s AND d.bundle_name IS NOT NULL AND NOT d.is_stale", DAG_ID)
                if rows:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the dag-processor did not parse {DAG_ID} within {timeout_s:.0f}s")
                time.sleep(2)

    def wait_for_workers(self, timeout_s: float = 300) -> None:
        """Wait until every Celery worker answers a ping on the broker."""
        if not self.workers:
            return
        expected = {f"celery@{worker.name}" for worker in self.workers}
        deadline = time.monotonic() + timeout_s
        while True:
            self.check_alive()
            output = subprocess.run(
                [str(Path(sys.executable).with_name("celery")), "--app",
                 "airflow.providers.celery.executors.celery_executor.app", "inspect", "ping", "--timeout", "5"],
                env=self.env(), cwd=self.stack.project, capture_output=True, text=True, timeout=120,
                stdin=subprocess.DEVNULL).stdout
            if all(f"{name}: OK" in output for name in expected):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"Celery workers {sorted(expected)} did not answer within {timeout_s:.0f}s:\n"
                                   f"{output[-2000:]}")
            time.sleep(3)

    def fail_unfinished_runs(self, run_ids: Sequence[str] | None = None) -> list[str]:
        """Mark unfinished runs of the DAG (and their unfinished tasks) failed; return their ids.

        Used before the scheduler starts, for runs a killed ``airflow dags test`` left running (the
        scheduler would otherwise run their remaining tasks), and afterwards for runs of ours that did
        not end.

        :param run_ids: only these runs (default: every unfinished run of the DAG)
        """
        finished = list(FINISHED)
        with closing(self.metadata_db()) as conn:
            if run_ids is None:
                rows = query(conn, "SELECT run_id FROM dag_run WHERE dag_id = %s AND NOT state = ANY(%s)", DAG_ID,
                             finished)
            else:
                rows = query(conn, "SELECT run_id FROM dag_run WHERE dag_id = %s AND run_id = ANY(%s) "
                                   "AND NOT state = ANY(%s)", DAG_ID, list(run_ids), finished)
            stale = [row[0] for row in rows]
            if stale:
                query(conn, "UPDATE task_instance SET state = 'failed' WHERE dag_id = %s AND run_id = ANY(%s) "
                            "AND (state IS NULL OR NOT state = ANY(%s))", DAG_ID, stale, finished)
                query(conn, "UPDATE dag_run SET state = 'failed', end_date = now() "
                            "WHERE dag_id = %s AND run_id = ANY(%s)", DAG_ID, stale)
                query(conn, "UPDATE backfill SET completed_at = now() WHERE dag_id = %s AND completed_at IS NULL",
                      DAG_ID)
                log.warning("marked unfinished runs failed: %s", stale)
        return stale


@contextmanager
def running(airflow: Airflow, *, migrate: bool = False) -> Iterator[Airflow]:
    """Start the services; yield once the DAG is parsed (and every worker answers).

    On the way out the DAG is paused, runs of it left unfinished are marked failed and the services
    are stopped, so ``airflow dags test`` on the same metadata database finds no scheduler competing.

    :param airflow: the services
    :param migrate: migrate the metadata database first (a database of the services' own)
    """
    if migrate:
        airflow.cli("db", "migrate", timeout_s=900)
    airflow.fail_unfinished_runs()
    airflow.start()
    try:
        airflow.wait_for_dag()
        airflow.wait_for_workers()
        yield airflow
    finally:
        try:
            airflow.cli("dags", "pause", DAG_ID)
        finally:
            stopped = airflow.stop()
            airflow.fail_unfinished_runs()
            log.info("stopped %s", ", ".join(stopped))


@contextmanager
def one_slot_airflow(
    stack: Stack, run_dir: Path, *, slots: int = 1, extra_env: Mapping[str, str] | None = None,
) -> Iterator[Airflow]:
    """Start Airflow's services on ``stack`` with the LocalExecutor and ``slots`` worker slots.

    :param stack: a running local stack
    :param run_dir: where the services' files go
    :param slots: the LocalExecutor's worker slots
    :param extra_env: further variables of every Airflow process
    """
    with running(Airflow(stack, run_dir, slots=slots, extra_env=dict(extra_env or {}))) as airflow:
        yield airflow


def backfill(airflow: Airflow, months: Sequence[str], conf: Mapping[str, Any]) -> list[str]:
    """Create a backfill of the DAG for data months ``YYYY-MM`` (consecutive); return its run ids in order.

    The runs stay queued until the DAG is unpaused. Each covers one month: with the DAG's
    ``CronDataIntervalTimetable`` a run's logical date is its data interval's start.

    :param airflow: the services that will run them
    :param months: the data months, oldest first
    :param conf: the runs' conf (the DAG's params, e.g. ``rounds`` and ``config_overrides``)
    """
    airflow.cli("backfill", "create", "--dag-id", DAG_ID, "--from-date", f"{months[0]}-01",
                "--to-date", f"{months[-1]}-28", "--reprocess-behavior", "none",
                "--max-active-runs", str(len(months)), "--dag-run-conf", json.dumps(dict(conf)))
    with closing(airflow.metadata_db()) as conn:
        rows = query(conn, "SELECT r.run_id FROM dag_run r JOIN backfill b ON b.id = r.backfill_id "
                           "WHERE b.dag_id = %s AND b.completed_at IS NULL ORDER BY r.logical_date", DAG_ID)
    run_ids = [row[0] for row in rows]
    if len(run_ids) != len(months):
        raise RuntimeError(f"backfill of {list(months)} created runs {run_ids}")
    return run_ids


def run_states(airflow: Airflow, run_ids: Sequence[str]) -> dict[str, str]:
    """Return the state of each run."""
    with closing(airflow.metadata_db()) as conn:
        rows = query(conn, "SELECT run_id, state FROM dag_run WHERE dag_id = %s AND run_id = ANY(%s)", DAG_ID,
                     list(run_ids))
    return {run_id: str(state) for run_id, state in rows}


def wait_for_runs(airflow: Airflow, run_ids: Sequence[str], timeout_s: float) -> dict[str, str]:
    """Wait until every run has finished; return their states (raise on timeout or a dead service)."""
    deadline = time.monotonic() + timeout_s
    while True:
        states = run_states(airflow, run_ids)
        if len(states) == len(run_ids) and all(state in FINISHED for state in states.values()):
            return states
        airflow.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"runs not finished after {timeout_s:.0f}s: {states}")
        time.sleep(2)
