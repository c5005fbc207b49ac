"""End to end: the monthly DAG on the real local stack (NVFlare POC, PostgreSQL, MLflow, Airflow).

One data month (October 2026) is run twice as two Airflow runs, and the first run is re-run task by
task, as Airflow does after a clear. The NVFlare jobs, the warehouse and the registry are all real.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from mlflow import MlflowClient

from flareflow.local.cli import DAG_ID
from flareflow.local.stack import Stack
from flareflow.paths import dashboard_file
from flareflow.warehouse.loaders import row_counts

HOSPITALS = {"cleveland", "hungary", "switzerland", "va-long-beach"}
# two logical dates whose data interval is October 2026 (the run covers the previous month)
FIRST_RUN_AT = "2026-11-01T03:00:00+00:00"
SECOND_RUN_AT = "2026-11-15T12:00:00+00:00"
TASKS_IN_ORDER = ("validate_config", "federated_stats", "load_stats", "federated_training", "federated_shap",
                  "register_model", "refresh_dashboard")


def airflow(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """Run an Airflow command against the test stack, failing with its output if it fails."""
    result = subprocess.run([str(Path(stack.project) / ".venv/bin/airflow"), *args], env=stack.env(),
                            cwd=stack.project, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, f"airflow {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def query(stack: Stack, sql: str, *params: object) -> list[tuple]:
    conn = psycopg2.connect(stack.database().url("flareflow_warehouse"))
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


def counts(stack: Stack, run_id: str) -> dict[str, int]:
    conn = psycopg2.connect(stack.database().url("flareflow_warehouse"))
    try:
        return row_counts(conn, run_id)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def runs(stack: Stack, monkeypatch_module: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Run the DAG for October 2026 once; return the run ids in order as more runs are added."""
    for key, value in stack.service_env().items():
        monkeypatch_module.setenv(key, value)
    airflow(stack, "dags", "test", DAG_ID, FIRST_RUN_AT)
    yield [row[0] for row in query(stack, "SELECT run_id FROM runs ORDER BY started_at")]


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_first_run_writes_every_hospital_and_registers_version_1(stack: Stack, runs: list[str]) -> None:
    (run_id,) = runs
    assert query(stack, "SELECT status, sites FROM runs WHERE run_id = %s", run_id) == [
        ("success", sorted(HOSPITALS))
    ]
    for table in ("feature_stats", "training_metrics", "shap_importance"):
        sites = {row[0] for row in query(stack, f"SELECT DISTINCT site FROM {table} WHERE run_id = %s", run_id)}
        assert sites == HOSPITALS | {"global"}, table
    (version,) = query(stack, "SELECT calendar_version, mlflow_version FROM model_versions WHERE run_id = %s", run_id)
    assert version[0] == "2026.10.1"
    registered = MlflowClient().get_model_version("flareflow-heart-disease", version[1])
    assert registered.tags["calendar_version"] == "2026.10.1"
    assert registered.tags["airflow_run_id"] == run_id
    assert len(registered.tags["config_fingerprint"]) == 64


def test_dashboard_holds_the_four_panels(runs: list[str]) -> None:
    page = dashboard_file().read_text()
    for panel in ("training-curves", "feature-importance", "feature-distributions", "feature-summary"):
        assert f'id="{panel}"' in page
    assert "2026.10.1" in page
    for hospital in HOSPITALS:
        assert hospital in page


def test_rerunning_the_first_run_keeps_row_counts(stack: Stack, runs: list[str]) -> None:
    run_id = runs[0]
    before = counts(stack, run_id)
    jobs_before = query(stack, "SELECT count(*) FROM runs")
    for task_id in TASKS_IN_ORDER:
        airflow(stack, "tasks", "test", DAG_ID, task_id, run_id)
    assert counts(stack, run_id) == before
    assert query(stack, "SELECT count(*) FROM runs") == jobs_before
    assert query(stack, "SELECT status FROM runs WHERE run_id = %s", run_id) == [("success",)]


def test_second_run_of_the_same_month_gets_version_2(stack: Stack, runs: list[str]) -> None:
    airflow(stack, "dags", "test", DAG_ID, SECOND_RUN_AT)
    newest = query(stack, "SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1")[0][0]
    assert newest not in runs
    (version,) = query(stack, "SELECT calendar_version FROM model_versions WHERE run_id = %s", newest)
    assert version[0] == "2026.10.2"
    versions = [v for (v,) in query(stack, "SELECT calendar_version FROM model_versions ORDER BY n")]
    assert versions == ["2026.10.1", "2026.10.2"]
