"""A throwaway warehouse database per test, on a real PostgreSQL server.

``FLAREFLOW_TEST_DATABASE_URL`` (``postgresql://user@host:port``) names a server to use; without it an
embedded server is started for the session and removed at its end (see ``flareflow.warehouse.testing``).
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2
import pytest
from psycopg2.extensions import connection as Connection

from flareflow.warehouse.schema import migrate
from flareflow.warehouse.testing import configured_test_server, postgres_server, temporary_database


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Yield the URL of a PostgreSQL server (without a database) the tests may create databases on."""
    with postgres_server(configured_test_server()) as url:
        yield url


@pytest.fixture
def warehouse(postgres_url: str) -> Iterator[Connection]:
    """Yield a connection to a fresh, migrated warehouse database, dropped after the test.

    :param postgres_url: the server to create the database on
    """
    with temporary_database(postgres_url) as url:
        conn = psycopg2.connect(url)
        try:
            migrate(conn)
            yield conn
        finally:
            conn.close()
