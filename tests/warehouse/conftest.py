"""Throwaway warehouse databases on a real PostgreSQL server, one per test.

``FLAREFLOW_TEST_DATABASE_URL`` (``postgresql://user@host:port``) names a server to use; without it an
embedded server is started for the session and removed at its end (see ``flareflow.warehouse.testing``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg2
import pytest
from psycopg2.extensions import connection as Connection

from flareflow.warehouse.schema import migrate
from flareflow.warehouse.testing import configured_test_server, postgres_server, temporary_database

Connect = Callable[[], Connection]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Yield the URL of a PostgreSQL server (without a database) the tests may create databases on."""
    with postgres_server(configured_test_server()) as url:
        yield url


@pytest.fixture
def database_url(postgres_url: str) -> Iterator[str]:
    """Yield the URL of a fresh, empty (not migrated) database, dropped after the test."""
    with temporary_database(postgres_url) as url:
        yield url


@pytest.fixture
def connect(database_url: str) -> Iterator[Connect]:
    """Yield a factory of extra connections to the test's database, all closed after the test."""
    opened: list[Connection] = []

    def _connect() -> Connection:
        opened.append(psycopg2.connect(database_url))
        return opened[-1]

    yield _connect
    for conn in opened:
        conn.close()


@pytest.fixture
def warehouse(connect: Connect) -> Connection:
    """Return a connection to the test's database, migrated."""
    conn = connect()
    migrate(conn)
    return conn
