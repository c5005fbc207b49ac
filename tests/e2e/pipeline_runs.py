"""Helpers of the end-to-end tests: Airflow commands and warehouse queries on the test stack."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import psycopg2

from flareflow.local.cli import DAG_ID
from flareflow.local.stack import Stack
from flareflow.paths import task_dir
from flareflow.warehouse.loaders import row_counts

HOSPITALS = {"cleveland", "hungary", "switzerland", "va-long-beach"}
MODEL = "flareflow-heart-disease"
# two logical dates whose data interval is October 2026 (the run covers the previous month)
FIRST_RUN_AT = "2026-11-01T03:00:00+00:00"
SECOND_RUN_AT = "2026-11-15T12:00:00+00:00"
TASKS_IN_ORDER = ("validate_config", "check_data", "federated_stats", "load_stats", "federated_training",
                  "federated_shap", "register_model", "refresh_dashboard")


def airflow(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """Run an Airflow command against the test stack, failing with its output if it fails."""
    result = subprocess.run([str(Path(stack.project) / ".venv/bin/airflow"), *args], env=stack.env(),
                            cwd=stack.project, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, f"airflow {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def query(stack: Stack, sql: str, *params: object, database: str = "flareflow_warehouse") -> list[tuple]:
    """Return the rows of a query on one of the stack's databases (the warehouse by default)."""
    conn = psycopg2.connect(stack.database().url(database))
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


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


def xcom(stack: Stack, run_id: str, task_id: str) -> Any:
    """Return the value a task of the DAG returned (its ``return_value`` XCom), from Airflow's database."""
    (value,) = query(stack, "SELECT value FROM xcom WHERE dag_id = %s AND run_id = %s AND task_id = %s"
                            " AND key = 'return_value'", DAG_ID, run_id, task_id, database="flareflow_airflow")[0]
    return json.loads(value) if isinstance(value, str | bytes) else value


def training_result(run_id: str) -> dict[str, Any]:
    """Return the training job's result a run downloaded (needs the stack's FLAREFLOW_WORK_DIR)."""
    (result,) = (task_dir(DAG_ID, run_id, "federated_training") / "result").rglob("training_result.json")
    return json.loads(result.read_text())
