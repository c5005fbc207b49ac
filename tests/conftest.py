"""Fixtures shared by the suite: the real local stack (PostgreSQL, MLflow, NVFlare POC, Airflow), and
throwaway warehouse databases on a real PostgreSQL server, one per test.

``FLAREFLOW_TEST_DATABASE_URL`` (``postgresql://user@host:port``) names a server the database fixtures
may create databases on; without it an embedded server is started for the session and removed at its
end (see ``tests/postgres_helpers.py``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2
import pytest
from postgres_helpers import configured_test_server, postgres_server, temporary_database
from psycopg2.extensions import connection as Connection

from flareflow.local.processes import free_port
from flareflow.local.stack import NVFLARE_PORT_ENV, Stack, demo_source, project_dir
from flareflow.warehouse.schema import migrate

Connect = Callable[[], Connection]

#: a test using any of these fixtures needs a real NVFlare federation (``pytest.mark.federation``)
FEDERATION_FIXTURES = frozenset({"stack", "stack_env", "secure_federation"})
#: a test using any of these, or living in these folders, starts real Airflow services (``services``)
SERVICES_FIXTURES = frozenset({"airflow_services"})
SERVICES_FOLDERS = frozenset({"deferral", "services"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tiers from what each test uses, so a new test cannot land in the wrong one.

    ``make test-fast`` runs ``-m "not federation and not services"``; ``make test`` runs everything.
    """
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        folders = set(Path(str(item.path)).relative_to(Path(__file__).parent).parts[:-1])
        if fixtures & SERVICES_FIXTURES or folders & SERVICES_FOLDERS:
            item.add_marker(pytest.mark.services)
        if fixtures & FEDERATION_FIXTURES:
            item.add_marker(pytest.mark.federation)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """Bring up a private local stack with the demo data for the session; stop and remove it at the end.

    Its NVFlare server listens on a free port, so a developer's own stack (port 8002) may keep running.
    """
    # not pytest's tmp_path: the unprivileged postgres user must be able to traverse the folder
    home = Path(tempfile.mkdtemp(prefix="flareflow-test-"))
    os.chmod(home, 0o755)
    test_stack = Stack(home=home, project=project_dir())
    os.environ[NVFLARE_PORT_ENV] = str(free_port())
    try:
        test_stack.up(demo_source())
        yield test_stack
    finally:
        test_stack.down()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def stack_env(stack: Stack) -> dict[str, str]:
    """Return the environment of a pipeline process on the test stack."""
    return stack.env()


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
    """Yield a factory of connections to the test's database, all closed after the test."""
    opened: list[Connection] = []

    def _connect() -> Connection:
        opened.append(psycopg2.connect(database_url))
        return opened[-1]

    yield _connect
    for conn in opened:
        conn.close()


@pytest.fixture
def warehouse(connect: Connect) -> Connection:
    """Return a connection to the test's database, migrated: a fresh warehouse."""
    conn = connect()
    migrate(conn)
    return conn
