"""A throwaway warehouse database per test, on a real PostgreSQL server.

``FLAREFLOW_TEST_DATABASE_URL`` (``postgresql://user@host:port``) names a server to use; without it an
embedded server is started for the session and removed at its end.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from flareflow.local.postgres import EmbeddedPostgres
from flareflow.warehouse.schema import migrate
from psycopg2 import sql
from psycopg2.extensions import connection as Connection

TEST_DATABASE_URL_ENV = "FLAREFLOW_TEST_DATABASE_URL"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Yield the URL of a PostgreSQL server (without a database) the tests may create databases on.

    The embedded server's folder is not under pytest's ``tmp_path_factory``: as root, postgres runs as
    an unprivileged user, and every pytest session started meanwhile resets ``/tmp/pytest-of-root`` to
    mode 0700, which locks that user out of its data folder and crashes the server.
    """
    configured = os.environ.get(TEST_DATABASE_URL_ENV)
    if configured:
        yield configured.rstrip("/")
        return
    embedded = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="flareflow-test-pg-")))
    try:
        yield embedded.start().base_url
    finally:
        embedded.remove()


def _admin(postgres_url: str) -> Connection:
    conn = psycopg2.connect(postgres_url, dbname="postgres")
    conn.autocommit = True
    return conn


@pytest.fixture
def warehouse(postgres_url: str) -> Iterator[Connection]:
    """Yield a connection to a fresh, migrated warehouse database, dropped after the test.

    :param postgres_url: the server to create the database on
    """
    name = f"flareflow_test_{uuid.uuid4().hex[:16]}"
    admin = _admin(postgres_url)
    try:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        conn = psycopg2.connect(postgres_url, dbname=name)
        try:
            migrate(conn)
            yield conn
        finally:
            conn.close()
            with admin.cursor() as cur:
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        admin.close()
