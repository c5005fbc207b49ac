"""Run flareflow's real NVFlare jobs on a local stack and return their result files.

Shared by the benchmarks (``quality.py``, later ``slow_site.py``) and the quality tests. A job is
built and exported exactly as ``NVFlareJobOperator`` does it (``fl_tasks.jobs.export_job`` with the
operator's arguments: merged job config, ``until``, upstream result files), submitted through the
Flare API, followed until it ends, and its result downloaded. Nothing here pools site data.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from nvflare.fuel.flare_api.flare_api import Session

from fl_tasks.controllers import FAILURE_FILE
from fl_tasks.jobs import export_job
from flareflow.config import load_pipeline_config
from flareflow.hooks.nvflare import download_result, open_session, wait_for_sites
from flareflow.local.poc import ADMIN_USER, DEFAULT_PORT
from flareflow.local.sites import DataSource
from flareflow.local.stack import NVFLARE_PORT_ENV, Stack, demo_source, project_dir

log = logging.getLogger(__name__)

#: the status NVFlare gives a job that ran to its end without error
COMPLETED = "FINISHED:COMPLETED"
#: benchmark jobs log to their own MLflow experiment, apart from the pipeline's runs
MLFLOW_EXPERIMENT = "flareflow-benchmarks"


class JobFailed(RuntimeError):
    """An NVFlare job did not complete, or completed without a full result."""


@dataclass(frozen=True)
class Job:
    """One NVFlare job to run: its module (``fl_tasks.train.job`` …), name and ``build_job`` arguments.

    :param module: the job module, providing ``build_job``, ``RESULT_FILE`` and ``result_sites``
    :param name: the job name (also the folder of its export and result under the work folder)
    :param args: what the operator passes to ``build_job``: ``config``, ``until``, upstream result files
    """

    module: ModuleType
    name: str
    args: Mapping[str, Any] = field(default_factory=dict)


def _free_port() -> int:
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port != DEFAULT_PORT:  # a developer's own stack may hold NVFlare's default port
            return port


@contextmanager
def private_stack(
    prefix: str = "flareflow-bench-", source: DataSource | None = None, configs: Path | None = None,
) -> Iterator[Stack]:
    """Bring up a throw-away local stack on a free NVFlare port; stop and remove it afterwards.

    :param prefix: the prefix of its temporary state folder
    :param source: the multi-hospital file split into the sites (default: the demo dataset)
    :param configs: the config folder (default: the project's ``configs/``)
    """
    # not a private temp folder: the unprivileged postgres user must be able to traverse it
    home = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(home, 0o755)
    previous = os.environ.get(NVFLARE_PORT_ENV)
    os.environ[NVFLARE_PORT_ENV] = str(_free_port())  # read once, when the stack is first created
    stack = Stack(home=home, project=project_dir(), configs=configs)
    try:
        for attempt in (1, 2):  # ``up`` is idempotent: a second call finishes what a slow first one began
            try:
                stack.up(source or demo_source())
                break
            except RuntimeError as err:  # e.g. 'nvflare poc start' outwaited on a busy machine
                if attempt == 2:
                    raise
                log.warning("bringing the stack up failed, trying once more: %s", err)
        yield stack
    finally:
        try:
            stack.down()
        finally:
            if previous is None:
                os.environ.pop(NVFLARE_PORT_ENV, None)
            else:
                os.environ[NVFLARE_PORT_ENV] = previous
            shutil.rmtree(home, ignore_errors=True)


def job_config(stack: Stack, job: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return a job's merged, validated config as the operator passes it, with benchmark overrides.

    :param stack: the stack whose config folder is used
    :param job: ``stats``, ``train`` or ``shap``
    :param overrides: settings merged over the job's config (validated like trigger params)
    """
    merged = {"mlflow": {"experiment": MLFLOW_EXPERIMENT}, **dict(overrides or {})}
    return load_pipeline_config(stack.config_dir, merged).job(job).model_dump(mode="json")


@contextmanager
def _tracking_uri(uri: str | None) -> Iterator[None]:
    """Point jobs exported meanwhile at the stack's MLflow server, as the pipeline's workers do."""
    key = "MLFLOW_TRACKING_URI"
    previous = os.environ.get(key)
    if uri:
        os.environ[key] = uri
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = previous


def _result_file(job: Job, downloaded: Path) -> Path:
    return downloaded / "workspace" / job.module.RESULT_FILE


def _failure_reason(session: Session, job_id: str, destination: Path) -> str:
    try:
        failure = download_result(session, job_id, destination) / "workspace" / FAILURE_FILE
    except Exception:  # a job that never ran has nothing to download
        return ""
    return f": {json.loads(failure.read_text())['reason']}" if failure.is_file() else ""


@dataclass(frozen=True)
class JobRun:
    """One completed job: its NVFlare id, its result file and its job meta as the server left it.

    :param job: the job that ran
    :param job_id: its NVFlare job id (names its folder in each site's workspace)
    :param result_file: the downloaded result file
    :param meta: the job meta once the job ended (``submit_time``, ``start_time``, ``duration`` …)
    """

    job: Job
    job_id: str
    result_file: Path
    meta: Mapping[str, Any]

    @property
    def server_workspace(self) -> Path:
        """Return the downloaded server workspace of the job (its ``log.json``, result files …)."""
        return self.result_file.parents[len(Path(self.job.module.RESULT_FILE).parts) - 1]


def run_jobs(
    stack: Stack, jobs: Sequence[Job], work: Path, *, timeout_s: float = 1800, poll_s: float = 2,
) -> list[Path]:
    """Submit every job at once (NVFlare runs as many side by side as its scheduler allows), wait for
    all of them and return their result files, in the order of ``jobs`` (see :func:`run_jobs_detailed`).
    """
    return [run.result_file for run in run_jobs_detailed(stack, jobs, work, timeout_s=timeout_s, poll_s=poll_s)]


def run_jobs_detailed(
    stack: Stack, jobs: Sequence[Job], work: Path, *, timeout_s: float = 1800, poll_s: float = 2,
) -> list[JobRun]:
    """Submit every job at once (NVFlare runs as many side by side as its scheduler allows), wait for
    all of them and return their runs (id, result file, final meta), in the order of ``jobs``.

    Each job is exported into ``work/<name>/job`` and its result downloaded into
    ``work/<name>/result``. A job that fails, times out, or whose result lacks a participating site
    raises :class:`JobFailed`; jobs still running when this function leaves are aborted.

    :param stack: a running local stack
    :param jobs: the jobs to run (distinct names)
    :param work: the folder for exports and results
    :param timeout_s: how long to wait for all jobs together
    :param poll_s: the pause between status checks
    """
    if len({job.name for job in jobs}) != len(jobs):
        raise ValueError("job names must be distinct")
    sites = stack.sites()
    tracking_uri = stack.service_env().get("MLFLOW_TRACKING_URI")
    session = open_session(str(stack.poc().admin_kit), ADMIN_USER, attempts=5)
    submitted: dict[str, Job] = {}
    statuses: dict[str, str] = {}
    try:
        wait_for_sites(session, sites, timeout_s=120)
        for job in jobs:
            with _tracking_uri(tracking_uri):
                folder = export_job(job.module, work / job.name / "job", job.name, sites, job.args)
            job_id = session.submit_job(str(folder))
            submitted[job_id] = job
            log.info("submitted %s as NVFlare job %s", job.name, job_id)
        deadline = time.monotonic() + timeout_s
        while len(statuses) < len(submitted):
            for job_id in submitted.keys() - statuses.keys():
                status = str(session.get_job_meta(job_id).get("status", ""))
                if status.startswith("FINISHED"):
                    statuses[job_id] = status
                    log.info("NVFlare job %s (%s) ended %s", job_id, submitted[job_id].name, status)
            if len(statuses) < len(submitted):
                if time.monotonic() > deadline:
                    late = sorted(submitted[j].name for j in submitted.keys() - statuses.keys())
                    raise JobFailed(f"jobs {late} did not end within {timeout_s:.0f}s")
                time.sleep(poll_s)
        results = {}
        for job_id, job in submitted.items():
            destination = work / job.name / "result"
            if statuses[job_id] != COMPLETED:
                reason = _failure_reason(session, job_id, destination)
                raise JobFailed(f"NVFlare job {job_id} ({job.name}) ended {statuses[job_id]}{reason}")
            result_file = _result_file(job, download_result(session, job_id, destination))
            if not result_file.is_file():
                raise JobFailed(f"NVFlare job {job_id} ({job.name}) completed without {result_file}")
            missing = sorted(set(sites) - job.module.result_sites(json.loads(result_file.read_text())))
            if missing:
                raise JobFailed(f"NVFlare job {job_id} ({job.name}): result lacks site(s) {missing}")
            results[job.name] = JobRun(job, job_id, result_file, dict(session.get_job_meta(job_id)))
        return [results[job.name] for job in jobs]
    finally:
        for job_id in submitted.keys() - statuses.keys():
            try:
                session.abort_job(job_id)
                log.info("aborted NVFlare job %s (%s)", job_id, submitted[job_id].name)
            except Exception as err:  # the job may have ended meanwhile
                log.warning("could not abort NVFlare job %s: %s", job_id, err)
        session.close()


def run_job(stack: Stack, job: Job, work: Path, *, timeout_s: float = 1800) -> Path:
    """Run one job on the stack and return its result file (see :func:`run_jobs`)."""
    return run_jobs(stack, [job], work, timeout_s=timeout_s)[0]


def run_stats(stack: Stack, until: str, work: Path, overrides: Mapping[str, Any] | None = None) -> Path:
    """Run the federated statistics job for data admitted before ``until``; return its result file."""
    import fl_tasks.stats.job as stats_job

    job = Job(stats_job, "stats", {"config": job_config(stack, "stats", overrides), "until": until})
    return run_job(stack, job, work)


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send what the stack and NVFlare print to stderr, so stdout holds only the report."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
