"""``airflow flareflow backfill-stale``: recompute exactly the months computed with another config.

A month is stale when its latest successful run (the one the dashboard shows) carries a config
fingerprint other than the config folder's now. Each stale month gets one manual run of the DAG
without a logical date, its ``data_month`` param naming the month; the scheduler runs them
(``max_active_runs`` at a time) and each registers its own calendar version.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from psycopg2.extensions import connection as Connection

from flareflow.data_interval import DATA_MONTH_PARAM
from flareflow.paths import config_dir
from flareflow.warehouse.dashboard import StaleMonth, stale_months


def _warehouse_connection(conn_id: str) -> Connection:
    """Open the warehouse from its Airflow connection, as the DAG's steps do (extras, TLS, masked password)."""
    import psycopg2
    from airflow.models import Connection

    from flareflow.warehouse import connect_kwargs

    return psycopg2.connect(**connect_kwargs(Connection.get_connection_from_secrets(conn_id)))


def find_stale_months() -> tuple[str, list[StaleMonth]]:
    """Return the current config's fingerprint and the months computed with another config.

    :raises flareflow.config.ConfigError: when the config folder is invalid (nothing to compare with)
    """
    from flareflow.config import load_run_config

    config = load_run_config(config_dir(), {})
    conn = _warehouse_connection(config.job("stats").warehouse.conn_id)
    try:
        return config.fingerprint, stale_months(conn, config.fingerprint)
    finally:
        conn.close()


def trigger_month(dag_id: str, month: str) -> str:
    """Create a run of the DAG without a logical date for one data month; return its run id.

    :param dag_id: the pipeline's DAG
    :param month: the data month ``YYYY-MM``
    """
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.utils.types import DagRunTriggeredByType

    now = datetime.now(UTC)
    run_id = f"backfill_stale__{month}__{now:%Y%m%dT%H%M%S}"
    run = trigger_dag(dag_id, triggered_by=DagRunTriggeredByType.CLI, run_id=run_id, run_after=now,
                      conf={DATA_MONTH_PARAM: month}, logical_date=None)
    return str(run.run_id if run is not None else run_id)


def backfill_stale(args: argparse.Namespace) -> None:
    """List the stale months and trigger one run for each (none with ``--dry-run``).

    :param args: ``dag_id``, ``dry_run``
    """
    fingerprint, stale = find_stale_months()
    if not stale:
        print(f"every data month was computed with the current config ({fingerprint[:12]}): nothing to recompute")
        return
    print(f"{len(stale)} month(s) computed with a config other than the current one ({fingerprint[:12]}):")
    for month in stale:
        print(f"  {month.month}  run {month.run_id}  config {month.config_fingerprint[:12]}")
    if args.dry_run:
        return
    for month in stale:
        print(f"triggered {args.dag_id} run {trigger_month(args.dag_id, month.month)} for {month.month}")
