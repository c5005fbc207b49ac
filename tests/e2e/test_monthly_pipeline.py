"""End to end: the monthly DAG on the real local stack (NVFlare POC, PostgreSQL, MLflow, Airflow).

One data month (October 2026) is run twice as two Airflow runs, and the first run is re-run task by
task, as Airflow does after a clear. The NVFlare jobs, the warehouse and the registry are all real.
"""

from __future__ import annotations

from mlflow import MlflowClient
from pipeline_runs import DAG_ID, HOSPITALS, MODEL, TASKS_IN_ORDER, airflow, counts, xcom
from postgres_helpers import query

from flareflow.local.stack import Stack
from flareflow.paths import dashboard_file


def test_first_run_writes_every_hospital_and_registers_version_1(stack: Stack, runs: list[str]) -> None:
    (run_id,) = runs
    assert query(stack, "SELECT status, sites FROM runs WHERE run_id = %s", run_id) == [
        ("success", sorted(HOSPITALS))
    ]
    for table in ("feature_stats", "training_metrics", "shap_importance"):
        sites = {row[0] for row in query(stack, f"SELECT DISTINCT site FROM {table} WHERE run_id = %s", run_id)}
        assert sites == HOSPITALS | {"global"}, table
    checked = query(stack, "SELECT site, file_status, rows_in_window > 0 FROM data_quality_sites WHERE run_id = %s",
                    run_id)
    assert sorted(checked) == [(site, "found", True) for site in sorted(HOSPITALS)]
    (version,) = query(stack, "SELECT calendar_version, mlflow_version FROM model_versions WHERE run_id = %s", run_id)
    assert version[0] == "2026.10.1"
    registered = MlflowClient().get_model_version(MODEL, version[1])
    assert registered.tags["calendar_version"] == "2026.10.1"
    assert registered.tags["airflow_run_id"] == run_id
    assert len(registered.tags["config_fingerprint"]) == 64


def test_dashboard_holds_the_four_panels(stack: Stack, runs: list[str]) -> None:
    page = dashboard_file().read_text()
    for panel in ("data-quality", "training-curves", "feature-importance", "feature-distributions",
                  "feature-summary"):
        assert f'id="{panel}"' in page
    # the page shows October's latest successful run (the first, unless the second has run by now)
    ((version, role),) = query(stack, "SELECT calendar_version, role FROM dashboard_runs")
    assert version.startswith("2026.10.")
    assert f"{version} ({role})" in page
    for hospital in HOSPITALS:
        assert hospital in page


def promotion_record(stack: Stack, run_id: str) -> list[tuple]:
    """Return a run's version with its promotion decision as the warehouse recorded it."""
    return query(stack, "SELECT calendar_version, mlflow_version, role, promotion_reason, validation_auc,"
                        " previous_champion, decided_at FROM model_versions WHERE run_id = %s", run_id)


def test_rerunning_the_first_run_keeps_row_counts_version_and_role(stack: Stack, runs: list[str]) -> None:
    run_id = runs[0]
    before = counts(stack, run_id)
    jobs_before = query(stack, "SELECT count(*) FROM runs")
    (decision,) = promotion_record(stack, run_id)
    assert decision[2] in ("champion", "challenger") and decision[3]
    for task_id in TASKS_IN_ORDER:
        airflow(stack, "tasks", "test", DAG_ID, task_id, run_id)
    assert counts(stack, run_id) == before
    assert query(stack, "SELECT count(*) FROM runs") == jobs_before
    assert query(stack, "SELECT status FROM runs WHERE run_id = %s", run_id) == [("success",)]
    # the identical re-run kept its version and the decision taken for it, also in its XCom
    assert promotion_record(stack, run_id) == [decision]
    tags = MlflowClient().get_model_version(MODEL, decision[1]).tags
    assert (tags["promotion"], tags["promotion_reason"]) == decision[2:4]
    returned = xcom(stack, run_id, "register_model")
    assert (returned["calendar_version"], returned["role"], returned["promotion_reason"]) == (
        decision[0], decision[2], decision[3])


def test_second_run_of_the_same_month_gets_version_2(stack: Stack, runs: list[str], second_run: str) -> None:
    assert second_run not in runs
    (version,) = query(stack, "SELECT calendar_version FROM model_versions WHERE run_id = %s", second_run)
    assert version[0] == "2026.10.2"
    versions = [v for (v,) in query(stack, "SELECT calendar_version FROM model_versions ORDER BY n")]
    assert versions == ["2026.10.1", "2026.10.2"]
