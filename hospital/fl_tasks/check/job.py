"""Build the federated data check job: every hospital checks its file against the contract, before statistics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nvflare.job_config.api import FedJob
from nvflare.job_config.script_runner import FrameworkType, ScriptRunner

from fl_tasks.check.rules import problems
from fl_tasks.check.server import RESULT_FILE, FederatedDataCheck
from fl_tasks.jobs import require_sites

CLIENT_SCRIPT = Path(__file__).with_name("client.py")

__all__ = ["RESULT_FILE", "build_job", "result_problems", "result_sites"]


def build_job(
    *, name: str, sites: Sequence[str], config: Mapping[str, Any], until: str, **_: Any
) -> tuple[FedJob, dict[str, Any]]:
    """Define the data check job for one run; return it with the settings its client script reads.

    :param name: the job name
    :param sites: the sites that take part
    :param config: a merged job config (its ``data`` section is the contract)
    :param until: ISO date; the end of the run's window
    """
    job = FedJob(name=name)
    require_sites(job, sites)
    job.to_server(FederatedDataCheck(sites=sites, task_timeout_s=config["federation"]["task_timeout_s"]))
    for site in sites:
        job.to(ScriptRunner(script=str(CLIENT_SCRIPT), framework=FrameworkType.RAW), site)
    return job, {"data": dict(config["data"]), "until": until}


def result_sites(result: Mapping[str, Any]) -> set[str]:
    """Return the sites whose report the result holds."""
    return set(result["sites"])


def result_problems(result: Mapping[str, Any]) -> list[str]:
    """Return every hospital's contract problems, one line each (empty: every file keeps the contract)."""
    return [str(problem) for problem in problems(result["sites"])]
