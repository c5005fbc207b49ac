"""Run the DAG on a local stack the way production does: a real scheduler, dag-processor and triggerer.

Shared by ``benchmarks/deferral.py`` and ``tests/deferral/``. :func:`one_slot_airflow` starts Airflow's
services on a running :class:`~flareflow.local.stack.Stack` with the LocalExecutor limited to a given
number of worker slots (``core.parallelism``), and stops them again, pausing the DAG and ending
whatever its runs left unfinished. Besides the three services the brief names, an api-server serving
only the Execution API runs on a free port: in Airflow 3 a LocalExecutor worker runs its task through
that API, and the scheduler's default (``http://localhost:8080/execution/``) is the developer's own.

Nothing here changes how the pipeline runs: the DAG, its operators and the stack's connections are
the product's; only Airflow's slot count and the scheduler's own cron runs (off) differ.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2.extensions import connection as Connection

from flareflow.local.cli import DAG_ID
from flareflow.local.poc import DEFAULT_PORT
from flareflow.local.processes import Service
from flareflow.local.stack import Stack

log = logging.getLogger(__name__)

#: the states a DAG run or task instance never leaves by itself
FINISHED = ("success", "failed", "skipped", "upstream_failed", "removed")
SERVICES = ("scheduler", "dag-processor", "triggerer")


def free_port() -> int:
    """Return a free TCP port on localhost other than the ones a developer's own stack uses."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port not in (DEFAULT_PORT, DEFAULT_PORT + 1, 8080):
            return port


def metadata_db(stack: Stack) -> Connection:
    """Return an autocommit connection to the stack's Airflow metadata database."""
    conn = psycopg2.connect(stack.database().url("flareflow_airflow"))
    conn.autocommit = True
    return conn


def query(conn: Connection, sql: str, *params: object) -> list[tuple[Any, ...]]:
    """Run one statement and return its rows (none for statements without a result)."""
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


@dataclass
class Airflow:
    """Airflow's scheduler, dag-processor, triggerer and Execution API on a stack, with few worker slots.

    :param stack: a running local stack (PostgreSQL, MLflow, NVFlare POC, migrated metadata database)
    :param run_dir: where the services' pid and log files, task logs and the pipeline's work files go
    :param slots: the LocalExecutor's worker slots (``core.parallelism``)
    :param extra_env: further variables of every Airflow process (connections, settings)
    """

    stack: Stack
    run_dir: Path
    slots: int = 1
    extra_env: Mapping[str, str] = field(default_factory=dict)
    api_port: int = field(default_factory=free_port)

    def env(self) -> dict[str, str]:
        """Return the environment of every Airflow process: the stack's, with the slot limit."""
        return {
            **self.stack.env(),
            "FLAREFLOW_WORK_DIR": str(self.run_dir / "work"),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.run_dir / "logs"),
            "AIRFLOW__CORE__PARALLELISM": str(self.slots),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
            # runs come from backfills or triggers only, never from the cron schedule of a shared DAG
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            **self.extra_env,
        }

    def services(self) -> list[Service]:
        """Return the Execution API server and the three services, each with its pid and log file."""
        airflow = str(Path(sys.executable).with_name("airflow"))
        api = [airflow, "api-server", "--apps", "execution", "--host", "127.0.0.1", "--port", str(self.api_port),
               "--workers", "1"]
        return [Service("airflow-execution-api", api, self.run_dir),
                *(Service(f"airflow-{name}", [airflow, name], self.run_dir) for name in SERVICES)]

    def start(self) -> None:
        """Start every service (already running ones are left alone)."""
        env = self.env()
        for service in self.services():
            service.start(env, cwd=self.stack.project)

    def stop(self) -> list[str]:
        """Stop every service this object started; return their names."""
        return [service.name for service in self.services() if service.stop()]

    def check_alive(self) -> None:
        """Raise with its log's end when a service has died."""
        for service in self.services():
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
        with closing(metadata_db(self.stack)) as conn:
            while True:
                self.check_alive()
                rows = query(conn, "SELECT 1 FROM dag d JOIN serialized_dag s ON s.dag_id = d.dag_id "
                                   "WHERE d.dag_id = %s AND d.bundle_name IS NOT NULL AND NOT d.is_stale", DAG_ID)
                if rows:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the dag-processor did not parse {DAG_ID} within {timeout_s:.0f}s")
                time.sleep(2)


def fail_unfinished_runs(stack: Stack, run_ids: Sequence[str] | None = None) -> list[str]:
    """Mark unfinished runs of the DAG (and their unfinished tasks) failed; return their ids.

    Used before the scheduler starts, for runs a killed ``airflow dags test`` left running (the
    scheduler would otherwise run their remaining tasks), and afterwards for runs of ours that did not end.

    :param run_ids: only these runs (default: every unfinished run of the DAG)
    """
    finished = list(FINISHED)
    with closing(metadata_db(stack)) as conn:
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
            query(conn, "UPDATE dag_run SET state = 'failed', end_date = now() WHERE dag_id = %s AND run_id = ANY(%s)",
                  DAG_ID, stale)
            query(conn, "UPDATE backfill SET completed_at = now() WHERE dag_id = %s AND completed_at IS NULL",
                  DAG_ID)
            log.warning("marked unfinished runs failed: %s", stale)
    return stale


@contextmanager
def one_slot_airflow(
    stack: Stack, run_dir: Path, *, slots: int = 1, extra_env: Mapping[str, str] | None = None,
) -> Iterator[Airflow]:
    """Start Airflow's services on ``stack`` with ``slots`` worker slots; yield once the DAG is parsed.

    On the way out the DAG is paused, runs of it left unfinished are marked failed and the services
    are stopped, so ``airflow dags test`` on the same metadata database finds no scheduler competing.

    :param stack: a running local stack
    :param run_dir: where the services' files go
    :param slots: the LocalExecutor's worker slots
    :param extra_env: further variables of every Airflow process
    """
    airflow = Airflow(stack, run_dir, slots=slots, extra_env=dict(extra_env or {}))
    fail_unfinished_runs(stack)
    airflow.start()
    try:
        airflow.wait_for_dag()
        yield airflow
    finally:
        try:
            airflow.cli("dags", "pause", DAG_ID)
        finally:
            stopped = airflow.stop()
            fail_unfinished_runs(stack)
            log.info("stopped %s", ", ".join(stopped))


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
    with closing(metadata_db(airflow.stack)) as conn:
        rows = query(conn, "SELECT r.run_id FROM dag_run r JOIN backfill b ON b.id = r.backfill_id "
                           "WHERE b.dag_id = %s AND b.completed_at IS NULL ORDER BY r.logical_date", DAG_ID)
    run_ids = [row[0] for row in rows]
    if len(run_ids) != len(months):
        raise RuntimeError(f"backfill of {list(months)} created runs {run_ids}")
    return run_ids


def run_states(stack: Stack, run_ids: Sequence[str]) -> dict[str, str]:
    """Return the state of each run."""
    with closing(metadata_db(stack)) as conn:
        rows = query(conn, "SELECT run_id, state FROM dag_run WHERE dag_id = %s AND run_id = ANY(%s)", DAG_ID,
                     list(run_ids))
    return {run_id: str(state) for run_id, state in rows}


def wait_for_runs(airflow: Airflow, run_ids: Sequence[str], timeout_s: float) -> dict[str, str]:
    """Wait until every run has finished; return their states (raise on timeout or a dead service)."""
    deadline = time.monotonic() + timeout_s
    while True:
        states = run_states(airflow.stack, run_ids)
        if len(states) == len(run_ids) and all(state in FINISHED for state in states.values()):
            return states
        airflow.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"runs not finished after {timeout_s:.0f}s: {states}")
        time.sleep(2)
