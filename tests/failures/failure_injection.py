"""Failure injection on the real test stack: kill a hospital's NVFlare client, crash Airflow commands.

Everything here acts on the session ``stack`` (its own NVFlare POC on a free port, its own PostgreSQL
and MLflow): processes are ended by the ids in that stack's pid files, never by name.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pendulum
import psycopg2
from nvflare.fuel.flare_api.api_spec import NoConnection, NoReply
from nvflare.fuel.flare_api.flare_api import Session

from flareflow.hooks.nvflare import abort_job, connected_sites, is_terminal, job_status, list_jobs, wait_for_jobs
from flareflow.local.cli import DAG_ID
from flareflow.local.poc import NVFlarePOC
from flareflow.local.processes import pid_alive
from flareflow.local.stack import Stack
from flareflow.operators.nvflare import NVFlareJobOperator
from flareflow.warehouse.loaders import row_counts

#: a short per-site wait of the servers' workflows, so a dead site fails a job in seconds (long enough that
#: a live site's round on a loaded two-core machine never runs over it)
TASK_TIMEOUT_S = 30
#: short timeouts for every failure test: gate, job budget, polling
FAST_FEDERATION = {"task_timeout_s": TASK_TIMEOUT_S, "gate_timeout_s": 10, "job_timeout_s": 300,
                   "poll_interval_s": 1}


@dataclass
class Federation:
    """The test stack's NVFlare POC seen through one admin session, with ways to break it."""

    poc: NVFlarePOC
    session: Session
    killed: list[str] = field(default_factory=list)

    def job_ids(self) -> set[str]:
        """Return the ids of every job the server knows (any status)."""
        return set(list_jobs(self.session))

    def status(self, job_id: str) -> str:
        return job_status(self.session, job_id)

    def wait_until_finished(self, job_id: str, timeout_s: float) -> str:
        """Wait until a job has ended; return its final status (a timeout fails the test)."""
        return wait_for_jobs(self.session, [job_id], timeout_s=timeout_s, poll_s=0.5)[job_id]

    def new_job(self, before: set[str], name: str, timeout_s: float, watch: subprocess.Popen | None = None) -> str:
        """Wait for a job named ``name`` that is not in ``before``; return its id.

        :param watch: a process expected to submit it; its early end fails the test at once
        """
        deadline = time.monotonic() + timeout_s
        while True:
            fresh = [job_id for job_id in list_jobs(self.session, name=name) if job_id not in before]
            if fresh:
                return fresh[0]
            if watch is not None and watch.poll() is not None:
                raise AssertionError(f"the process submitting {name} ended ({watch.returncode}) without a job")
            if time.monotonic() > deadline:
                raise AssertionError(f"no new NVFlare job {name} after {timeout_s:.0f}s")
            time.sleep(0.5)

    def server_log(self, job_id: str) -> str:
        path = self.poc.site_workspace("server") / job_id / "log.txt"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_for_log(self, job_id: str, text: str, timeout_s: float) -> None:
        """Wait until the server's log of a job holds ``text`` (e.g. a workflow's progress line)."""
        deadline = time.monotonic() + timeout_s
        while text not in self.server_log(job_id):
            if is_terminal(self.status(job_id)) or time.monotonic() > deadline:
                tail = self.server_log(job_id)[-3000:]
                raise AssertionError(f"job {job_id} ({self.status(job_id)}) never logged {text!r}; "
                                     f"the end of its server log:\n{tail}")
            time.sleep(0.5)

    def site_pids(self, site: str) -> list[int]:
        """Return the site's supervising loop, its client process and every job worker it runs."""
        workspace = self.poc.site_workspace(site)
        pids = []
        for pid_file in ("daemon_pid.fl", "pid.fl"):  # the restart loop first, so it restarts nothing
            try:
                pids.append(int((workspace / pid_file).read_text().strip()))
            except (FileNotFoundError, ValueError):
                continue
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):  # job workers: worker_process -m <workspace>
            try:
                argv = cmdline.read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
            if any(arg.endswith("worker_process") for arg in argv) and str(workspace) in argv:
                pids.append(int(cmdline.parent.name))
        return [pid for pid in pids if pid_alive(pid)]

    def kill_site(self, site: str) -> list[int]:
        """SIGKILL every process of one site, as a crash would; return the pids."""
        pids = self.site_pids(site)
        assert len(pids) >= 2, f"no running client of {site} to kill: {pids}"
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        for pid_file in ("daemon_pid.fl", "pid.fl"):  # stale now; a reused pid would block the restart
            (self.poc.site_workspace(site) / pid_file).unlink(missing_ok=True)
        self.killed.append(site)
        deadline = time.monotonic() + 10
        while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        return pids

    @contextmanager
    def frozen(self, site: str) -> Iterator[None]:
        """Stop (SIGSTOP) the site's client process for the block, as a machine too busy to answer."""
        pid = int((self.poc.site_workspace(site) / "pid.fl").read_text().strip())
        os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(pid, signal.SIGCONT)

    def wait_until_disconnected(self, site: str, timeout_s: float = 10) -> None:
        """Wait until the gate's view of the federation (``connected_sites``) no longer has ``site``."""
        deadline = time.monotonic() + timeout_s
        while site in connected_sites(self.session):
            if time.monotonic() > deadline:
                raise AssertionError(f"{site} still counts as connected {timeout_s:.0f}s after it died")
            time.sleep(0.5)

    def restart_killed_sites(self, timeout_s: float = 120) -> None:
        """Start the killed sites again and wait until the whole federation answers."""
        for site in self.killed:
            result = subprocess.run(["nvflare", "poc", "start", "-p", site], env=self.poc.env, capture_output=True,
                                    text=True, stdin=subprocess.DEVNULL, timeout=120)
            assert result.returncode == 0, f"cannot restart {site}:\n{result.stdout}\n{result.stderr}"
        self.killed.clear()
        deadline = time.monotonic() + timeout_s
        while True:  # every site must answer a status query itself, not merely be listed by the server
            try:
                replies = self.session.get_client_job_status() or []
            except (NoConnection, NoReply):  # the query times out while a client is slow to answer
                replies = []
            answering = {reply.get("client_name") for reply in replies if reply.get("status") != "no_reply"}
            if answering >= set(self.poc.sites):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"only {sorted(answering)} answer {timeout_s:.0f}s after the restart")
            time.sleep(1)

    def abort_unfinished(self, job_ids: set[str]) -> None:
        """Abort whatever of ``job_ids`` still runs, so the next test has the federation to itself."""
        for job_id in job_ids:
            if abort_job(self.session, job_id):
                self.wait_until_finished(job_id, 120)


@dataclass
class AirflowRun:
    """An Airflow CLI command running against the test stack, its output in a file."""

    process: subprocess.Popen
    log_file: Path

    def wait(self, timeout_s: float) -> tuple[int, str]:
        """Wait for the command to end; return its exit code and output."""
        try:
            code = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"airflow ran over {timeout_s:.0f}s:\n{self.output()[-4000:]}") from None
        return code, self.output()

    def output(self) -> str:
        return self.log_file.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the command and everything it started (its own process group), as a crash would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


def dag_run_id(stack: Stack, logical_date: str) -> str:
    """Return the id of the latest DAG run ``airflow dags test`` created for a logical date."""
    conn = psycopg2.connect(stack.database().url("flareflow_airflow"))
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT run_id FROM dag_run WHERE dag_id = %s AND logical_date = %s ORDER BY id DESC LIMIT 1",
                        (DAG_ID, logical_date))
            (run_id,) = cur.fetchone()
            return str(run_id)
    finally:
        conn.close()


def warehouse_rows(stack: Stack, run_id: str) -> dict[str, int]:
    """Return how many warehouse rows each table holds for a run."""
    conn = psycopg2.connect(stack.database().url("flareflow_warehouse"))
    try:
        return row_counts(conn, run_id)
    finally:
        conn.close()


def dag_conf(**sections: Any) -> str:
    """Return a ``--conf`` for a DAG run: config overrides with the fast federation settings."""
    overrides = {"federation": dict(FAST_FEDERATION), **sections}
    return json.dumps({"config_overrides": overrides})


@dataclass
class TaskInstanceStub:
    """What NVFlareJobOperator reads of a task instance: its ids and its upstream tasks' XComs."""

    dag_id: str
    run_id: str
    task_id: str
    xcoms: dict[str, Any]

    def xcom_pull(self, task_ids: str) -> Any:
        return self.xcoms.get(task_ids)


def training_context(run_id: str, validated: dict[str, Any], stats_result: Path) -> dict[str, Any]:
    """Return the context ``federated_training`` runs in for a DAG run (Sept. 2026's data interval)."""
    ti = TaskInstanceStub(DAG_ID, run_id, "federated_training",
                          {"validate_config": validated, "federated_stats": {"result_file": str(stats_result)}})
    return {"ti": ti, "data_interval_start": pendulum.datetime(2026, 9, 1, tz="UTC"),
            "data_interval_end": pendulum.datetime(2026, 10, 1, tz="UTC")}


def training_operator() -> NVFlareJobOperator:
    """Return ``federated_training`` as the DAG defines it (its MLflow tags aside)."""
    return NVFlareJobOperator(task_id="federated_training", job="fl_tasks.train.job", config_job="train",
                              inputs={"stats_result": "federated_stats"})
