"""Monthly federated retraining of a model on NVIDIA FLARE, from the hospitals' own data.

Each run covers a data month and uses every record the hospitals dated before its end (see the data
contract, ``data`` in the configs). A scheduled or backfilled run covers the month before it; a manual
run the month of its ``data_month`` param, else its data interval when given a logical date, else (no
logical date: ``"logical_date": null`` in the REST API, ``airflow dags trigger``) the last complete
calendar month before it was triggered, in the schedule's timezone (``flareflow.data_interval``).

1. ``validate_config``      the YAML configs (default + one per job), fail fast, fingerprint
2. ``check_data``           NVFlare job: every hospital checks its file against the data contract;
                            any broken file stops the run here, all hospitals' problems in one message
3. ``federated_stats``      NVFlare job: count, sum, mean, stddev, histograms per site and global
4. ``load_stats``           the data check reports and the statistics into the PostgreSQL warehouse
5. ``federated_training``   NVFlare job: SGD logistic regression, FedAvg, per-round validation
6. ``federated_shap``       NVFlare job: every hospital explains the global model on its own data
7. ``register_model``       MLflow registry, calendar version ``YYYY.MM.N``, the champion rule
8. ``approve_promotion``    with ``mlflow.promotion: approval`` only (else skipped): a person approves or
                            rejects a version that passed the champion rule (Airflow's human-in-the-loop)
9. ``refresh_dashboard``    the run's results published, warehouse views refreshed, page rendered; emits
                            the assets ``flareflow.statistics``, ``flareflow.model``, ``flareflow.dashboard``

``discard_failed_run`` runs only when a step failed: it removes the run's rows and model versions.
"""

from __future__ import annotations

from datetime import timedelta
from types import ModuleType
from typing import Any

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable, Param, task
from airflow.sdk.exceptions import AirflowFailException

from flareflow import assets
from flareflow.config import read_schedule
from flareflow.data_interval import DATA_MONTH_PARAM, run_interval, schedule_timezone
from flareflow.operators.approval import PromotionApprovalOperator
from flareflow.operators.nvflare import NVFlareJobOperator
from flareflow.paths import config_dir, dashboard_file
from flareflow.warehouse import connect

SCHEDULE = read_schedule(config_dir())


def _pipeline() -> ModuleType:
    """Import the steps' work when a task runs: it pulls in MLflow and scikit-learn, too slow for parsing."""
    from flareflow import pipeline

    return pipeline


def _warehouse(validated: dict[str, Any]) -> Any:
    return connect(validated["jobs"]["stats"]["warehouse"]["conn_id"])


def _run(validated: dict[str, Any], sites: list[str], **context: Any) -> Any:
    interval = run_interval(context, schedule_timezone(validated))
    return _pipeline().run_info(run_id=context["run_id"], dag_id=context["dag"].dag_id, start=interval.start,
                                end=interval.end, validated=validated, sites=sites)


with DAG(
    dag_id="federated_retraining",
    description="Monthly data check, federated statistics, training and SHAP on NVFlare; model registry; "
                "dashboard",
    schedule=CronDataIntervalTimetable(SCHEDULE.cron, timezone=SCHEDULE.timezone),
    start_date=pendulum.datetime(2024, 12, 1, tz="UTC"),
    catchup=False,
    max_active_runs=3,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=30)},
    params={
        "rounds": Param(None, type=["null", "integer"], minimum=1, maximum=1000,
                        description="FedAvg rounds for this run (empty: the config's)"),
        "config_overrides": Param({}, type="object",
                                  description="Settings merged over every job's config, e.g. "
                                              '{"training": {"learning_rate": 0.05}}'),
        DATA_MONTH_PARAM: Param(None, type=["null", "string"], pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$",
                                description="The data month YYYY-MM this run covers (empty: the month before "
                                            "its logical date; without one, the last complete month)"),
    },
    doc_md=__doc__,
    tags=["federated-learning", "nvflare"],
) as dag:

    @task(retries=0)
    def validate_config(params: dict[str, Any] | None = None) -> dict[str, Any]:
        return _pipeline().validate_config(config_dir(), params or {})

    validated = validate_config()

    check_data = NVFlareJobOperator(task_id="check_data", job="fl_tasks.check.job", config_job="stats")
    federated_stats = NVFlareJobOperator(task_id="federated_stats", job="fl_tasks.stats.job", config_job="stats")

    @task
    def load_stats(validated: dict[str, Any], check: dict[str, Any], stats: dict[str, Any], **context: Any) -> int:
        conn = _warehouse(validated)
        try:
            return _pipeline().load_stats(conn, _run(validated, stats["sites"], **context), validated,
                                       stats["result_file"], check["result_file"])
        finally:
            conn.close()

    federated_training = NVFlareJobOperator(
        task_id="federated_training", job="fl_tasks.train.job", config_job="train",
        inputs={"stats_result": "federated_stats"},
        job_args={"mlflow_run_tags": {"airflow_run_id": "{{ run_id }}"}},
    )
    federated_shap = NVFlareJobOperator(
        task_id="federated_shap", job="fl_tasks.shap.job", config_job="shap",
        inputs={"stats_result": "federated_stats", "training_result": "federated_training"},
    )

    @task
    def register_model(
        validated: dict[str, Any], stats: dict[str, Any], training: dict[str, Any], **context: Any
    ) -> dict[str, Any]:
        conn = _warehouse(validated)
        try:
            return _pipeline().register_model(conn, _run(validated, training["sites"], **context), validated,
                                           stats["result_file"], training["result_file"])
        finally:
            conn.close()

    approve_promotion = PromotionApprovalOperator(task_id="approve_promotion")

    @task(trigger_rule="none_failed", outlets=list(assets.OUTPUTS))
    def refresh_dashboard(
        validated: dict[str, Any], training: dict[str, Any], shap: dict[str, Any], model: dict[str, Any],
        **context: Any,
    ) -> str:
        # the decision after a person's answer, when the approval step ran (it is skipped otherwise)
        model = context["ti"].xcom_pull(task_ids="approve_promotion") or model
        conn = _warehouse(validated)
        try:
            run = _run(validated, training["sites"], **context)
            _pipeline().publish_results(conn, run, training["result_file"], shap["result_file"])
            page = str(_pipeline().refresh_dashboard(conn, dashboard_file(), config_dir()))
        finally:
            conn.close()
        month = f"{run.data_interval_start:%Y-%m}"
        events = context["outlet_events"]
        events[assets.STATISTICS].extra = assets.statistics_extra(
            run_id=run.run_id, month=month, fingerprint=run.config_fingerprint, sites=run.sites)
        events[assets.MODEL].extra = assets.model_extra(model, month=month)
        events[assets.DASHBOARD].extra = assets.dashboard_extra(path=page, run_id=run.run_id, month=month)
        return page

    @task(trigger_rule="one_failed", retries=0)
    def discard_failed_run(**context: Any) -> None:
        validated = context["ti"].xcom_pull(task_ids="validate_config")
        if validated:  # with invalid configs nothing was written
            conn = _warehouse(validated)
            try:
                _pipeline().discard_run(conn, validated, context["run_id"])
            finally:
                conn.close()
        # this task is the DAG's only leaf on failure: failing it marks the run failed
        raise AirflowFailException("a step failed; the run's warehouse rows and model versions were removed")

    stats_loaded = load_stats(validated, check_data.output, federated_stats.output)
    validated >> check_data >> federated_stats
    stats_loaded >> federated_training >> federated_shap
    model = register_model(validated, federated_stats.output, federated_training.output)
    federated_shap >> model >> approve_promotion
    dashboard = refresh_dashboard(validated, federated_training.output, federated_shap.output, model)
    approve_promotion >> dashboard
    [validated, check_data, federated_stats, stats_loaded, federated_training, federated_shap, model,
     approve_promotion, dashboard] >> discard_failed_run()
