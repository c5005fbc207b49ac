"""The data check on the real test federation: broken hospital files stop the monthly DAG before statistics.

One DAG run (``airflow dags test``) with three hospitals' files broken in four ways: the run fails at
``check_data`` with one message naming every broken hospital, its column and what is wrong; no
statistics job is submitted, nothing reaches the warehouse or MLflow, and the hospital whose file is
fine is not named. Then one check job on the restored files: every hospital keeps the contract.
The files are restored whatever happens.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pandas as pd
import psycopg2
import pytest
from mlflow import MlflowClient

import fl_tasks.check.job as check_job
from benchmarks._federation import Job, job_config, run_job
from fl_tasks.data import SITE_DATA_DIR
from flareflow.hooks.nvflare import open_session
from flareflow.local.cli import DAG_ID
from flareflow.local.poc import ADMIN_USER
from flareflow.local.stack import Stack
from flareflow.registry import RUN_TAG
from flareflow.warehouse.loaders import row_counts
from flareflow.warehouse.schema import migrate

pytestmark = pytest.mark.federation

LOGICAL_DATE = "2026-08-01T03:00:00+00:00"  # data interval: July 2026, a run no other test uses
UNTIL = "2026-08-01"
#: short timeouts: the check job takes seconds; nothing here waits for a dead site
FAST = {"federation": {"task_timeout_s": 60, "gate_timeout_s": 30, "job_timeout_s": 300, "poll_interval_s": 1}}
#: what the run's failure must say, hospital by hospital, in the contract's column order
EXPECTED = [
    "cleveland, column age: 2 unparseable values (not a number)",
    "cleveland, column id: 1 duplicated record id (records repeating an earlier record's id)",
    "hungary: the header of heart.csv reads as one column holding semicolons: its fields seem separated by "
    "';', but data.delimiter is ','",
    "switzerland: no data file heart.csv in the site's data folder",
]


def data_file(stack: Stack, site: str) -> Path:
    return stack.poc().site_workspace(site) / SITE_DATA_DIR / "heart.csv"


@contextmanager
def broken_files(stack: Stack) -> Iterator[None]:
    """Break three hospitals' files (va-long-beach keeps its own); restore every one afterwards."""
    files = {site: data_file(stack, site) for site in ("cleveland", "hungary", "switzerland")}
    originals = {site: path.read_bytes() for site, path in files.items()}
    try:
        records = pd.read_csv(files["cleveland"], dtype=str)
        records.loc[[3, 5], "age"] = ["sixty", "n/k"]  # text in a numeric column
        records.loc[7, "id"] = records.loc[6, "id"]  # a duplicated record id
        records.to_csv(files["cleveland"], index=False)
        pd.read_csv(files["hungary"], dtype=str).to_csv(files["hungary"], index=False, sep=";")
        files["switzerland"].unlink()
        yield
    finally:
        for site, content in originals.items():
            files[site].write_bytes(content)


def job_names(stack: Stack) -> dict[str, str]:
    """Return every job the NVFlare server knows: id -> name."""
    with closing(open_session(str(stack.poc().admin_kit), ADMIN_USER)) as session:
        return {job["job_id"]: job.get("job_name", "") for job in session.list_jobs()}


def warehouse_rows(stack: Stack, run_id: str) -> dict[str, int]:
    with closing(psycopg2.connect(stack.database().url("flareflow_warehouse"))) as conn:
        migrate(conn)  # whether or not a run migrated it before this test
        return row_counts(conn, run_id)


def dag_run_id(stack: Stack) -> str:
    with closing(psycopg2.connect(stack.database().url("flareflow_airflow"))) as conn, conn.cursor() as cur:
        cur.execute("SELECT run_id FROM dag_run WHERE dag_id = %s AND logical_date = %s ORDER BY id DESC LIMIT 1",
                    (DAG_ID, LOGICAL_DATE))
        return str(cur.fetchone()[0])


def mlflow_runs(stack: Stack, run_id: str) -> list[str]:
    """Return the MLflow runs and model versions tagged with an Airflow run id."""
    client = MlflowClient(stack.service_env()["MLFLOW_TRACKING_URI"])
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, f"tags.{RUN_TAG} = '{run_id}'") if experiments else []
    versions = client.search_model_versions(f"tags.{RUN_TAG} = '{run_id}'")
    return [run.info.run_id for run in runs] + [f"version {v.version}" for v in versions]


def test_broken_files_stop_the_run_before_statistics_with_every_hospitals_problems(stack: Stack) -> None:
    before = job_names(stack)
    with broken_files(stack):
        run = subprocess.run([str(Path(stack.project) / ".venv/bin/airflow"), "dags", "test", DAG_ID, LOGICAL_DATE,
                              "--conf", json.dumps({"config_overrides": FAST})],
                             env=stack.env(), cwd=stack.project, capture_output=True, text=True, timeout=900)
    output = run.stdout + run.stderr
    assert run.returncode != 0, output[-4000:]
    new_jobs = {job_id: name for job_id, name in job_names(stack).items() if job_id not in before}
    assert list(new_jobs.values()) == ["check_data"], new_jobs  # one check, no statistics job, no retry
    (job_id,) = new_jobs
    message = (f"check_data: NVFlare job {job_id} completed, and its result has {len(EXPECTED)} problem(s):\n"
               + "\n".join(f"  - {line}" for line in EXPECTED))
    assert message in output, output[-6000:]
    assert "va-long-beach" not in output[output.index(message):output.index(message) + len(message)]
    assert re.search(r"NVFlareResultRejected", output), output[-4000:]
    run_id = dag_run_id(stack)
    assert not any(warehouse_rows(stack, run_id).values())
    assert mlflow_runs(stack, run_id) == []


def test_a_good_federation_passes_the_check(stack: Stack, tmp_path: Path) -> None:
    job = Job(check_job, "check_good", {"config": job_config(stack, "stats"), "until": UNTIL})
    result = json.loads(run_job(stack, job, tmp_path, timeout_s=300).read_text())
    assert check_job.result_problems(result) == []
    reports = result["sites"]
    assert sorted(reports) == sorted(stack.sites())
    for site, report in reports.items():
        assert report["file"] == "found" and report["suspected_delimiter"] is None, site
        assert 0 < report["rows_in_window"] < report["rows_in_file"], site  # records dated from August on
        assert report["label_classes"] == [0, 1] and report["duplicated_ids"] == 0, site
        assert "dataset" not in report["columns"], site  # a column outside the contract never leaves
