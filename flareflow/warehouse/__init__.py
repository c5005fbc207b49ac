"""The research centre's warehouse, and all of flareflow's SQL.

``schema`` (versioned migrations), ``loaders`` (each run's rows, idempotent; the dashboard views'
refresh), ``models`` (calendar numbers, model versions and promotion decisions of the registry),
``dashboard`` (what the dashboard page reads from its views).
"""

from __future__ import annotations

import psycopg2
from psycopg2.extensions import connection as Connection


def connect(conn_id: str) -> Connection:
    """Open a psycopg2 connection to the warehouse named by an Airflow connection.

    The postgres provider's hook may hand out psycopg 3 connections; the loaders use psycopg2.

    :param conn_id: the Airflow connection of the warehouse
    """
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    return psycopg2.connect(
        host=conn.host or "127.0.0.1", port=conn.port or 5432, user=conn.login or None,
        password=conn.password or None, dbname=conn.schema or None, application_name="flareflow",
    )
