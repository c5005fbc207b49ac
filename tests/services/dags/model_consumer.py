"""A downstream DAG of the real-services tests: it runs when flareflow registers a model version.

Scheduled on the ``flareflow.model`` asset only: the scheduler creates its runs from the asset events
the pipeline's runs emit. It returns what it read of them (their extras), for the tests to compare.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, task

from flareflow.assets import MODEL

CONSUMER_DAG_ID = "flareflow_model_consumer"

with DAG(dag_id=CONSUMER_DAG_ID, schedule=[MODEL], start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
         catchup=False, tags=["flareflow-tests"]):

    @task
    def read_new_models(**context: Any) -> list[dict[str, Any]]:
        events = context["triggering_asset_events"][MODEL]
        return [{**dict(event.extra), "source_run_id": event.source_run_id} for event in events]

    read_new_models()
