"""Versioned migrations of the warehouse schema, applied in order, once each."""

from __future__ import annotations

import logging
from importlib import resources

from psycopg2.extensions import connection as Connection

log = logging.getLogger(__name__)

_LOCK_KEY = 0x666C617265  # any constant: serializes concurrent migrators


def migrations() -> list[tuple[int, str, str]]:
    """Return (version, name, sql) for every migration file, in version order."""
    folder = resources.files(__package__) / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def migrate(conn: Connection) -> list[int]:
    """Apply the migrations this database has not seen yet; return the versions applied.

    :param conn: an open connection to the warehouse database
    """
    applied: list[int] = []
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        cur.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cur.execute("SELECT version FROM schema_migrations")
        done = {row[0] for row in cur.fetchall()}
        for version, name, statements in migrations():
            if version in done:
                continue
            cur.execute(statements)
            cur.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
            applied.append(version)
            log.info("applied warehouse migration %s", name)
    return applied
