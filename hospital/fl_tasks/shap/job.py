"""Build the federated SHAP job: the final global model and a shared background go to every site."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nvflare.job_config.api import FedJob
from nvflare.job_config.script_runner import FrameworkType, ScriptRunner

from fl_tasks.contract import Contract
from fl_tasks.jobs import client_settings, require_sites
from fl_tasks.shap.background import background_rows
from fl_tasks.shap.server import RESULT_FILE, FederatedShap
from fl_tasks.stats.result import read_result

CLIENT_SCRIPT = Path(__file__).with_name("client.py")

__all__ = ["RESULT_FILE", "build_job", "result_sites"]


def build_job(
    *, name: str, sites: Sequence[str], config: Mapping[str, Any], until: str, stats_result: str,
    training_result: str, **_: Any,
) -> tuple[FedJob, dict[str, Any]]:
    """Define the SHAP job for one run; return it with the settings its client script reads.

    :param name: the job name
    :param sites: the sites that take part
    :param config: the merged ``shap`` job config
    :param until: ISO date; sites use records dated before it
    :param stats_result: the federated statistics file of this run
    :param training_result: the training job's result file (holding the final global model)
    """
    features = Contract.from_config(config["data"]).features.columns
    options = config["shap"]
    background = background_rows(read_result(stats_result, features), options["background_size"],
                                 seed=config["training"]["seed"])
    model = json.loads(Path(training_result).read_text())["model"]
    job = FedJob(name=name)
    require_sites(job, sites)
    job.to_server(FederatedShap(
        sites=sites, task_timeout_s=config["federation"]["task_timeout_s"], model=model,
        background=background.tolist(), features=features,
    ))
    for site in sites:
        job.to(ScriptRunner(script=str(CLIENT_SCRIPT), framework=FrameworkType.RAW), site)
    return job, client_settings(config, until, stats_result, shap=options, seed=config["training"]["seed"])


def result_sites(result: Mapping[str, Any]) -> set[str]:
    """Return the sites whose importances the SHAP result holds."""
    return set(result["sites"])
