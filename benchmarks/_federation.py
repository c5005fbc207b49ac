"""Run flareflow's real NVFlare jobs on a local stack and return their result files.

Shared by the benchmarks (``quality.py``, ``slow_site.py``) and the quality, SHAP and privacy tests. A
job is built and exported exactly as ``NVFlareJobOperator`` does it (``fl_tasks.jobs.export_job`` with
the operator's arguments: merged job config, ``until``, upstream result files), then submitted,
followed, checked and downloaded through the job lifecycle of ``flareflow.hooks.nvflare``, as the
operator's are. Nothing here pools site data.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from fl_tasks.jobs import export_job
from flareflow.config import load_pipeline_config
from flareflow.hooks.nvflare import (
    COMPLETED,
    NVFlareJobError,
    abort_job,
    failure_reason,
    fetch_result,
    job_meta,
    open_session,
    submit_job,
    wait_for_jobs,
    wait_for_sites,
)
from flareflow.local.poc import ADMIN_USER, DEFAULT_PORT
from flareflow.local.processes import free_port
from flareflow.local.sites import DataSource
from flareflow.local.stack import NVFLARE_PORT_ENV, Stack, demo_source, project_dir

log = logging.getLogger(__name__)

#: benchmark jobs log to their own MLflow experiment, apart from the pipeline's runs
MLFLOW_EXPERIMENT = "flareflow-benchmarks"


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


@contextmanager
def private_stack(
    prefix: str = "flareflow-bench-", source: DataSource | None = None, configs: Path | None = None, *,
    parent: str | None = None, port: int | None = None, stack_class: type[Stack] = Stack,
    site_timeout_s: float = 120,
) -> Iterator[Stack]:
    """Bring up a throw-away local stack on a free NVFlare port; stop and remove it afterwards.

    :param prefix: the prefix of its temporary state folder
    :param source: the multi-hospital file split into the sites (default: the demo dataset)
    :param configs: the config folder (default: the project's ``configs/``)
    :param parent: the folder its state folder is made in (default: the system's temporary folder)
    :param port: the NVFlare server port (default: a free one, never 8002)
    :param stack_class: the stack to bring up (a benchmark may leave out parts it does not use)
    :param site_timeout_s: how long ``up`` waits for every site to connect
    """
    # not a private temp folder: the unprivileged postgres user must be able to traverse it
    home = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(home, 0o755)
    previous = os.environ.get(NVFLARE_PORT_ENV)
    # read once, when the stack is first created
    os.environ[NVFLARE_PORT_ENV] = str(port or free_port(avoid={DEFAULT_PORT}))
    stack = stack_class(home=home, project=project_dir(), configs=configs)
    try:
        for attempt in (1, 2):  # ``up`` is idempotent: a second call finishes what a slow first one began
            try:
                stack.up(source or demo_source(), site_timeout_s=site_timeout_s)
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


def job_wall_s(meta: Mapping[str, Any]) -> float:
    """Return the NVFlare job's wall time from its meta: submitted to ended (``start_time + duration``)."""
    hours, minutes, seconds = (float(part) for part in str(meta["duration"]).split(":"))
    ended = datetime.fromisoformat(meta["start_time"]) + timedelta(hours=hours, minutes=minutes, seconds=seconds)
    return ended.timestamp() - float(meta["submit_time"])


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
    raises :class:`~flareflow.hooks.nvflare.NVFlareJobError` (naming the job); jobs still running when
    this function leaves are aborted.

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
            submitted[submit_job(session, folder)] = job
        statuses = wait_for_jobs(session, list(submitted), timeout_s=timeout_s, poll_s=poll_s)
        results = {}
        for job_id, job in submitted.items():
            destination = work / job.name / "result"
            if statuses[job_id] != COMPLETED:
                reason = failure_reason(session, job_id, destination)
                raise NVFlareJobError(f"NVFlare job {job_id} ({job.name}) ended {statuses[job_id]}"
                                      f"{f': {reason}' if reason else ''}")
            try:
                result_file = fetch_result(session, job_id, destination, job.module, sites)
            except NVFlareJobError as err:
                raise NVFlareJobError(f"{job.name}: {err}") from err
            results[job.name] = JobRun(job, job_id, result_file, job_meta(session, job_id))
        return [results[job.name] for job in jobs]
    finally:
        for job_id in submitted.keys() - statuses.keys():
            try:
                abort_job(session, job_id)
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
