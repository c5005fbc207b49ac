"""The throwaway-database helper the PostgreSQL tests stand on."""

from __future__ import annotations

from urllib.parse import urlsplit

import psycopg2
from postgres_helpers import database_url, temporary_database


def test_database_url_replaces_only_the_database() -> None:
    assert database_url("postgresql://postgres@127.0.0.1:5432", "wh") == "postgresql://postgres@127.0.0.1:5432/wh"
    assert database_url("postgresql://u:pw@db.example:6543/postgres?sslmode=require", "wh") == \
        "postgresql://u:pw@db.example:6543/wh?sslmode=require"


def _exists(postgres_url: str, name: str) -> bool:
    conn = psycopg2.connect(database_url(postgres_url, "postgres"))
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,))
            return cur.fetchone()[0] == 1
    finally:
        conn.close()


def test_temporary_database_is_fresh_and_dropped_even_with_open_sessions(postgres_url: str) -> None:
    with temporary_database(postgres_url) as first, temporary_database(postgres_url) as second:
        assert first != second
        name = urlsplit(first).path.lstrip("/")
        assert name.startswith("flareflow_test_") and _exists(postgres_url, name)
        left_open = psycopg2.connect(first)
        with left_open, left_open.cursor() as cur:
            cur.execute("SELECT current_database(), count(*) FROM pg_tables WHERE schemaname = 'public'")
            assert cur.fetchone() == (name, 0)
            cur.execute("CREATE TABLE scratch (x int)")
    assert not _exists(postgres_url, name)
    left_open.close()  # its server session was terminated by the drop
