"""The work of the DAG's Python steps, kept out of the DAG file so it reads like the seven steps.

Each step imports what it needs when it runs, so a step pays for its own imports only: validating the
configs never imports MLflow, scikit-learn or the dashboard (``tests/test_lazy_imports.py``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flareflow.config import ConfigError, load_run_config, read_trigger_params

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

    from flareflow.warehouse.loaders import RunInfo

log = logging.getLogger(__name__)


def trigger_overrides(params: Mapping[str, Any]) -> dict[str, Any]:
    """Return the config overrides a manual trigger asked for (its form's params).

    :raises ConfigError: naming every param that is unknown or malformed
    """
    overrides, problems = read_trigger_params(params)
    if problems:
        raise ConfigError(problems=problems)
    return overrides


def validate_config(config_dir: Path, params: Mapping[str, Any]) -> dict[str, Any]:
    """Load and validate every job's config; return them with the run's fingerprint (for XCom).

    :raises ConfigError: listing every problem of the trigger's params and of every config file
    """
    pipeline = load_run_config(config_dir, params)
    log.info("configs valid; fingerprint %s", pipeline.fingerprint)
    return {"fingerprint": pipeline.fingerprint, "jobs": pipeline.to_dict()}


def run_info(
    *, run_id: str, dag_id: str, start: datetime, end: datetime, validated: Mapping[str, Any],
    sites: list[str],
) -> RunInfo:
    """Return the warehouse's record of this Airflow run."""
    from flareflow.warehouse.loaders import RunInfo

    return RunInfo(run_id=run_id, dag_id=dag_id, data_interval_start=start, data_interval_end=end,
                           config_fingerprint=validated["fingerprint"], sites=sites)


def _features(validated: Mapping[str, Any], job: str) -> list[str]:
    from fl_tasks.contract import Contract

    return Contract.from_config(validated["jobs"][job]["data"]).features.columns


def load_stats(
    conn: Connection, run: RunInfo, validated: Mapping[str, Any], stats_file: str, check_file: str,
) -> int:
    """Migrate the warehouse if needed and replace this run's data check reports and feature statistics."""
    from fl_tasks.stats.result import read_result
    from flareflow.warehouse import loaders
    from flareflow.warehouse.schema import migrate

    migrate(conn)
    written = loaders.load_data_quality(conn, run, json.loads(Path(check_file).read_text()))
    written += loaders.load_stats(conn, run, read_result(stats_file, _features(validated, "stats")))
    log.info("loaded %s data quality and statistics rows for run %s", written, run.run_id)
    return written


def register_model(
    conn: Connection, run: RunInfo, validated: Mapping[str, Any], stats_file: str, training_file: str,
) -> dict[str, str]:
    """Log the global model to MLflow, register it under the run's next calendar version and promote it.

    A version an earlier try of the same Airflow run registered for a different model is retired
    (:func:`mlflow_registry.retire_replaced`). With ``mlflow.promotion: approval`` a version that passes
    the champion rule awaits a person's answer (``approval`` is ``awaiting``; see
    :func:`settle_approval`).

    Return the version (calendar and MLflow), its MLflow run, and the promotion decision (role, reason,
    validation AUC, the champion it was compared with, approval) for XCom.
    """
    started = time.monotonic()
    from mlflow import MlflowClient

    from fl_tasks.stats.result import read_result
    from flareflow.registry import APPROVAL, final_validation_auc, mlflow_registry, model_digest

    imported = time.monotonic()
    config = validated["jobs"]["train"]
    client = MlflowClient()
    experiment, model_name = config["mlflow"]["experiment"], config["mlflow"]["registered_model"]
    training = json.loads(Path(training_file).read_text())
    digest = model_digest(training["model"], run.config_fingerprint)
    registered = mlflow_registry.registered_version(conn, client, model_name, run.run_id, digest)
    if registered:  # a re-run that trained the very same model keeps its version (and its role)
        log.info("run %s already registered this model as %s", run.run_id, registered.calendar_version)
    else:
        parent_id = mlflow_registry.parent_run(client, experiment, run)
        mlflow_registry.adopt_site_runs(client, experiment, run, parent_id)
        model_id = mlflow_registry.log_global_model(
            client, parent_id, config=config, stats=read_result(stats_file, _features(validated, "train")),
            training=training,
        )
        registered = mlflow_registry.register_calendar_version(
            conn, client, run=run, model_name=model_name, model_id=model_id, parent_id=parent_id,
            sites=run.sites, model_digest=digest,
        )
        client.set_terminated(parent_id, "FINISHED")
    registered_at = time.monotonic()
    mlflow_registry.retire_replaced(conn, client, model_name=model_name, run_id=run.run_id, kept=registered)
    promotion = mlflow_registry.promote(conn, client, model_name=model_name, registered=registered,
                                        auc=final_validation_auc(training),
                                        tolerance=config["mlflow"]["champion_tolerance"],
                                        approval=config["mlflow"]["promotion"] == APPROVAL)
    ended = time.monotonic()
    log.info("register_model took %.2f s: imports %.2f s, logging and registering %.2f s, promotion %.2f s",
             ended - started, imported - started, registered_at - imported, ended - registered_at)
    return {**registered.as_dict(), **promotion.as_dict(), "registered_model": model_name,
            "config_fingerprint": run.config_fingerprint}


def settle_approval(conn: Connection, validated: Mapping[str, Any], model: Mapping[str, str], *, approved: bool,
                    by: str | None, comment: str = "") -> dict[str, str]:
    """Apply a person's answer (or the wait's timeout) to the run's version awaiting approval.

    :param validated: the validated configs (``validate_config``'s XCom)
    :param model: what :func:`register_model` returned
    :param approved: whether the answer was to approve
    :param by: who answered; None when nobody did within ``mlflow.approval_timeout_s``
    :param comment: what they wrote, if anything
    :return: ``model`` with the final decision
    """
    from mlflow import MlflowClient

    from flareflow.registry import mlflow_registry

    config = validated["jobs"]["train"]["mlflow"]
    promotion = mlflow_registry.settle_approval(
        conn, MlflowClient(), model_name=config["registered_model"], mlflow_version=model["mlflow_version"],
        approved=approved, by=by, comment=comment, timeout=f"{config['approval_timeout_s']} s")
    return {**model, **promotion.as_dict()}


def publish_results(conn: Connection, run: RunInfo, training_file: str, shap_file: str) -> None:
    """Load the run's training metrics and SHAP importances, then mark the run successful."""
    from flareflow.warehouse import loaders

    loaders.load_training(conn, run, json.loads(Path(training_file).read_text()))
    loaders.load_shap(conn, run, json.loads(Path(shap_file).read_text()))
    loaders.mark_run_succeeded(conn, run.run_id)


def current_fingerprint(config_dir: Path) -> str | None:
    """Return the fingerprint of the config folder as it is now (no trigger params); None if it is invalid.

    :param config_dir: the config folder
    """
    try:
        return load_run_config(config_dir, {}).fingerprint
    except ConfigError as err:
        log.warning("the config folder %s is invalid now, months are not compared with it: %s", config_dir, err)
        return None


def refresh_dashboard(conn: Connection, out_path: Path, config_dir: Path) -> Path:
    """Refresh the warehouse views the dashboard reads and render it, holding the dashboard's lock.

    Concurrent runs refresh and render in turn (:func:`loaders.dashboard_lock`), so the page written
    last holds every run committed before it. Each month's config is compared with the current one.

    :param conn: warehouse connection
    :param out_path: the page
    :param config_dir: the config folder (the current config)
    """
    from flareflow.dashboard.render import render_dashboard
    from flareflow.warehouse import loaders

    fingerprint = current_fingerprint(config_dir)
    with loaders.dashboard_lock(conn):
        loaders.refresh_views(conn)
        return render_dashboard(conn, out_path, current_fingerprint=fingerprint)


def discard_run(conn: Connection, validated: Mapping[str, Any] | None, run_id: str) -> None:
    """Remove everything a failed run wrote: its warehouse rows and its model versions.

    If its version had become the champion, the alias goes back to the champion before it.
    """
    from flareflow.warehouse import loaders
    from flareflow.warehouse.schema import migrate

    migrate(conn)
    deleted = loaders.discard_run(conn, run_id)
    versions = 0
    if validated:
        from mlflow import MlflowClient

        from flareflow.registry import mlflow_registry

        model_name = validated["jobs"]["train"]["mlflow"]["registered_model"]
        versions = mlflow_registry.discard_run_models(conn, MlflowClient(), model_name, run_id)
    log.info("discarded failed run %s: %s warehouse run(s), %s model version(s)", run_id, deleted, versions)
