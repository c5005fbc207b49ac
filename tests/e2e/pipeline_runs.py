"""Helpers of the end-to-end tests: Airflow commands and warehouse queries on the test stack."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
from postgres_helpers import query

from flareflow.local.cli import DAG_ID
from flareflow.local.stack import Stack
from flareflow.paths import task_dir
from flareflow.warehouse.loaders import row_counts

HOSPITALS = {"cleveland", "hungary", "switzerland", "va-long-beach"}
MODEL = "flareflow-heart-disease"
# a logical date whose data interval is October 2026 (the run covers the previous month), and the same
# month as `flareflow run` takes it
FIRST_RUN_AT = "2026-11-01T03:00:00+00:00"
SECOND_RUN_MONTH = "2026-10"
TASKS_IN_ORDER = ("validate_config", "check_data", "federated_stats", "load_stats", "federated_training",
                  "federated_shap", "register_model", "refresh_dashboard")


def airflow(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """Run an Airflow command against the test stack, failing with its output if it fails."""
    result = subprocess.run([str(Path(stack.project) / ".venv/bin/airflow"), *args], env=stack.env(),
                            cwd=stack.project, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, f"airflow {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def counts(stack: Stack, run_id: str) -> dict[str, int]:
    """Return how many rows each warehouse table holds for one run."""
    conn = psycopg2.connect(stack.database().url("flareflow_warehouse"))
    try:
        return row_counts(conn, run_id)
    finally:
        conn.close()


def run_dag(stack: Stack, logical_date: str) -> str:
    """Run the DAG for one logical date with ``airflow dags test``; return the run id it added."""
    migrated = query(stack, "SELECT to_regclass('runs') IS NOT NULL") == [(True,)]  # the first run migrates
    before = {run_id for (run_id,) in query(stack, "SELECT run_id FROM runs")} if migrated else set()
    airflow(stack, "dags", "test", DAG_ID, logical_date)
    added = {run_id for (run_id,) in query(stack, "SELECT run_id FROM runs")} - before
    assert len(added) == 1, f"the run for {logical_date} added runs {added}"
    return added.pop()


@dataclass(frozen=True)
class CliRun:
    """A run made with ``flareflow run``: its id, what the terminal showed, and how long it took."""

    run_id: str
    stdout: str
    stderr: str
    wall_s: float


def run_cli(stack: Stack, month: str) -> CliRun:
    """Run the DAG for one data month with ``flareflow run --month``, as a user does; return what it did."""
    before = {run_id for (run_id,) in query(stack, "SELECT run_id FROM runs")}
    env = {**os.environ, "FLAREFLOW_HOME": str(stack.home), "FLAREFLOW_PROJECT_DIR": str(stack.project)}
    started = time.monotonic()
    result = subprocess.run([str(Path(stack.project) / ".venv/bin/flareflow"), "run", "--month", month], env=env,
                            cwd=stack.project, capture_output=True, text=True, timeout=1800, stdin=subprocess.DEVNULL)
    wall_s = time.monotonic() - started
    assert result.returncode == 0, f"flareflow run failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    added = {run_id for (run_id,) in query(stack, "SELECT run_id FROM runs")} - before
    assert len(added) == 1, f"flareflow run --month {month} added runs {added}"
    return CliRun(added.pop(), result.stdout, result.stderr, wall_s)


def xcom(stack: Stack, run_id: str, task_id: str) -> Any:
    """Return the value a task of the DAG returned (its ``return_value`` XCom), from Airflow's database."""
    (value,) = query(stack, "SELECT value FROM xcom WHERE dag_id = %s AND run_id = %s AND task_id = %s"
                            " AND key = 'return_value'", DAG_ID, run_id, task_id, database="flareflow_airflow")[0]
    return json.loads(value) if isinstance(value, str | bytes) else value


def training_result(run_id: str) -> dict[str, Any]:
    """Return the training job's result a run downloaded (needs the stack's FLAREFLOW_WORK_DIR)."""
    (result,) = (task_dir(DAG_ID, run_id, "federated_training") / "result").rglob("training_result.json")
    return json.loads(result.read_text())
