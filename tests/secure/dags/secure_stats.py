"""The secure-mode test DAG: the production DAG's first two steps, on whichever NVFlare connection it is given.

``validate_config`` and ``federated_stats`` are built exactly as in ``dags/federated_retraining.py``;
the connection comes from the run's ``config_overrides`` (``{"federation": {"conn_id": …}}``), as an
operator would point the real DAG at another federation.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from flareflow.operators.nvflare import NVFlareJobOperator
from flareflow.paths import config_dir

with DAG(
    dag_id="secure_stats",
    schedule=None,
    start_date=pendulum.datetime(2024, 12, 1, tz="UTC"),
    catchup=False,
    params={"config_overrides": Param({}, type="object")},
    tags=["test"],
) as dag:

    @task(retries=0)
    def validate_config(params: dict[str, Any] | None = None) -> dict[str, Any]:
        from flareflow import pipeline

        return pipeline.validate_config(config_dir(), params or {})

    validate_config() >> NVFlareJobOperator(
        task_id="federated_stats", job="fl_tasks.stats.job", config_job="stats", retries=0
    )
