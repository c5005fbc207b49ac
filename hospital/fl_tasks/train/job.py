"""Build the federated training job: FedAvg controller, Client API script at every site, MLflow.

It runs where jobs are built (Airflow's workers); MLflow and NVFlare's MLflow receiver (which needs
it) are imported only when a job is built, so importing this module needs no MLflow.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nvflare.app_common.widgets.convert_to_fed_event import ConvertToFedEvent
from nvflare.job_config.api import FedJob
from nvflare.job_config.script_runner import FrameworkType, ScriptRunner

from fl_tasks.contract import Contract
from fl_tasks.jobs import client_settings, require_sites
from fl_tasks.train.model import initial_params
from fl_tasks.train.server import RESULT_FILE, FedAvgTraining

CLIENT_SCRIPT = Path(__file__).with_name("client.py")


def ensure_experiment(tracking_uri: str | None, name: str) -> None:
    """Create the MLflow experiment on the tracking server unless it exists.

    Left to NVFlare's MLflow receiver, the experiment would get an artifact location inside the NVFlare
    server's job folder, and the registered models logged to it later would land there too.

    :param tracking_uri: the MLflow tracking server (None: nothing to create)
    :param name: the experiment name
    """
    if not tracking_uri:
        return
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri)
    if client.get_experiment_by_name(name) is None:
        try:
            client.create_experiment(name)
        except MlflowException:  # a concurrent run created it meanwhile
            if client.get_experiment_by_name(name) is None:
                raise


def build_job(
    *, name: str, sites: Sequence[str], config: Mapping[str, Any], until: str, stats_result: str,
    mlflow_run_tags: Mapping[str, str] | None = None, **_: Any,
) -> tuple[FedJob, dict[str, Any]]:
    """Define the training job for one run; return it with the settings its client script reads.

    :param name: the job name
    :param sites: the sites that take part
    :param config: the merged ``train`` job config
    :param until: ISO date; sites use records dated before it
    :param stats_result: the normalized federated statistics (JSON file) of this run
    :param mlflow_run_tags: tags for the per-site MLflow runs (e.g. the parent run id)
    """
    from nvflare.app_opt.tracking.mlflow.mlflow_receiver import MLflowReceiver

    features = Contract.from_config(config["data"]).features.columns
    job = FedJob(name=name)
    require_sites(job, sites)
    job.to_server(FedAvgTraining(
        sites=sites, task_timeout_s=config["federation"]["task_timeout_s"],
        num_rounds=config["training"]["rounds"], initial_model=initial_params(len(features)),
    ))
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")
    ensure_experiment(tracking_uri, config["mlflow"]["experiment"])
    job.to_server(MLflowReceiver(
        tracking_uri=tracking_uri,
        kw_args={"experiment_name": config["mlflow"]["experiment"], "run_name": name,
                 "run_tags": dict(mlflow_run_tags or {})},
    ), id="mlflow_receiver")
    for site in sites:
        job.to(ScriptRunner(script=str(CLIENT_SCRIPT), framework=FrameworkType.RAW), site)
        job.to(ConvertToFedEvent(events_to_convert=["analytix_log_stats"]), site, id="event_to_fed")
    # the model order travels with the settings: the clients must not derive it from mapping order
    return job, client_settings(config, until, stats_result, training=config["training"], features=features)


def result_sites(result: Mapping[str, Any]) -> set[str]:
    """Return the sites whose test metrics the training result holds."""
    return set(result["test"]) - {"global"}


__all__ = ["RESULT_FILE", "build_job", "result_sites"]
