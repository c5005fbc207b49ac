"""The research centre's warehouse, and all of flareflow's SQL.

``schema`` (versioned migrations), ``loaders`` (each run's rows, idempotent; the dashboard views'
refresh), ``models`` (calendar numbers, model versions and promotion decisions of the registry),
``dashboard`` (what the dashboard page reads from its views).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import psycopg2
from psycopg2.extensions import connection as Connection

if TYPE_CHECKING:
    from airflow.sdk import Connection as AirflowConnection

#: extras that make the postgres provider's hook log in with a cloud IAM token: refused, not ignored
UNSUPPORTED_EXTRAS = ("iam", "azure_conn_id")


def connect_kwargs(conn: AirflowConnection) -> dict[str, Any]:
    """Return psycopg2's keyword arguments for an Airflow connection: its fields, then every libpq extra.

    Extras win over the fields, as in the postgres provider's hook, so ``sslmode``, ``sslrootcert``,
    ``sslcert``, ``sslkey``, ``sslcrl``, ``connect_timeout``, ``options``, ``target_session_attrs`` and any
    other libpq parameter reach libpq as given. The hook's own extras (``cursor``, ``sqlalchemy_*``,
    ``redshift``, ...; ``PostgresHook.ignored_extra_options``) are not libpq parameters and are left out.

    :param conn: the warehouse's Airflow connection
    """
    extra = conn.extra_dejson
    unsupported = [key for key in UNSUPPORTED_EXTRAS if extra.get(key)]
    if unsupported:
        raise ValueError(f"Airflow connection {conn.conn_id!r}: extra {', '.join(unsupported)} is not supported "
                         "by flareflow's warehouse connection; use a login and password or a client certificate")
    kwargs: dict[str, Any] = {"host": conn.host or "127.0.0.1", "port": conn.port or 5432, "user": conn.login,
                              "password": conn.password, "dbname": conn.schema, "application_name": "flareflow"}
    if extra:  # the provider's hook (and what it imports, ~0.5 s) only when there are extras to sort
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        kwargs.update({key: value for key, value in extra.items() if key not in PostgresHook.ignored_extra_options})
    return {key: value for key, value in kwargs.items() if value not in (None, "")}


def connect(conn_id: str) -> Connection:
    """Open a psycopg2 connection to the warehouse named by an Airflow connection, honouring its extras.

    psycopg2 rather than the postgres provider's hook: the hook hands out psycopg 3 connections when
    psycopg 3 is installed, and the loaders are written for psycopg2. The password is masked in task
    logs (as is and URL-encoded, the form it takes in connection URIs) before anything is logged.

    :param conn_id: the Airflow connection of the warehouse
    """
    from airflow.sdk import BaseHook
    from airflow.sdk.log import mask_secret

    conn = BaseHook.get_connection(conn_id)
    if conn.password:
        mask_secret(conn.password)
        mask_secret(quote(conn.password, safe=""))
    return psycopg2.connect(**connect_kwargs(conn))
