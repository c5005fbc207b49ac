"""Fixtures of the failure tests: the test federation with ways to break it, Airflow commands."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing
from pathlib import Path

import pytest
from failure_injection import AirflowRun, Federation

import fl_tasks.stats.job as stats_job
from fl_tasks.jobs import export_job
from flareflow import pipeline
from flareflow.hooks.nvflare import download_result, open_session, submit_job, wait_for_jobs
from flareflow.local.poc import ADMIN_USER
from flareflow.local.stack import Stack


@pytest.fixture
def federation(stack: Stack) -> Iterator[Federation]:
    """An admin session on the test federation; killed sites are restarted and new jobs ended afterwards."""
    poc = stack.poc()
    session = open_session(str(poc.admin_kit), ADMIN_USER)
    fed = Federation(poc, session)
    before = fed.job_ids()
    try:
        yield fed
    finally:
        try:
            fed.abort_unfinished(fed.job_ids() - before)
            fed.restart_killed_sites()
        finally:
            session.close()


@pytest.fixture
def pipeline_env(stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Put the stack's settings (connections, MLflow, work folder) into this process's environment."""
    env = {**stack.service_env(), "FLAREFLOW_WORK_DIR": str(tmp_path / "work")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def airflow(stack: Stack, tmp_path: Path) -> Iterator[Callable[..., AirflowRun]]:
    """Start Airflow CLI commands on the test stack (in their own process group); kill leftovers after."""
    started: list[AirflowRun] = []

    def start(*args: str, env: Mapping[str, str] | None = None) -> AirflowRun:
        log_file = tmp_path / f"airflow-{len(started)}.log"
        with log_file.open("wb") as out:
            process = subprocess.Popen([str(Path(stack.project) / ".venv/bin/airflow"), *args],
                                       env={**stack.env(), **(env or {})}, cwd=stack.project, stdout=out,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        run = AirflowRun(process, log_file)
        started.append(run)
        return run

    yield start
    for run in started:
        run.kill()




@pytest.fixture(scope="session")
def stats_result(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the federated statistics job once on the test federation; return its result file."""
    validated = pipeline.validate_config(stack.config_dir, {})
    config = validated["jobs"]["stats"]
    root = tmp_path_factory.mktemp("stats")
    job_folder = export_job(stats_job, root / "job", "failures_stats", config["federation"]["sites"],
                            {"config": config, "until": "2026-10-01"})
    with closing(open_session(str(stack.poc().admin_kit), ADMIN_USER)) as session:
        job_id = submit_job(session, job_folder)
        wait_for_jobs(session, [job_id], timeout_s=300, poll_s=0.5)
        result = download_result(session, job_id, root / "result") / "workspace" / stats_job.RESULT_FILE
    assert result.is_file(), f"the statistics job {job_id} left no {stats_job.RESULT_FILE}"
    return result
