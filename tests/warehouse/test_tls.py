"""TLS to the warehouse: ``flareflow.warehouse.connect`` honours the Airflow connection's extras.

A real PostgreSQL server (a distribution's binaries: the embedded wheel has no TLS) accepts TLS
connections only, with a certificate from a throwaway CA. Each test reaches it through an Airflow
connection given as an ``AIRFLOW_CONN_*`` URI, whose query string becomes the connection's extras, and
``connect`` — the function every warehouse task uses.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import psycopg2
import pytest
from psycopg2.extensions import connection as Connection
from tls_server import Authority, Certificate, TLSPostgres, postgres_bin

from flareflow.warehouse import connect, connect_kwargs

CONN_ID = "flareflow_tls_warehouse"
USER = "warehouse_tls"


@dataclass(frozen=True)
class TLSSetup:
    """The running server and what a client needs: the right CA, a wrong one, a client certificate.

    :param server: the server
    :param password: ``USER``'s password
    :param ca: the CA that signed the server's certificate
    :param wrong_cas: an unrelated CA, and an impostor with the right CA's name but another key
    :param client: a certificate for the user ``certuser``, signed by ``ca``
    """

    server: TLSPostgres
    password: str
    ca: Certificate
    wrong_cas: tuple[Certificate, Certificate]
    client: Certificate


@pytest.fixture(scope="module")
def tls() -> Iterator[TLSSetup]:
    bin_dir = postgres_bin()
    if bin_dir is None or not (bin_dir / "postgres").is_file():
        pytest.skip("no PostgreSQL server binaries with TLS (e.g. Debian's postgresql-15); set FLAREFLOW_TLS_PG_BIN")
    # not pytest's tmp_path: as root the server runs as an unprivileged user that must traverse the folder
    root = Path(tempfile.mkdtemp(prefix="flareflow-tls-"))
    os.chmod(root, 0o755)
    ca = Authority(root / "client" / "ca", "flareflow test CA")
    unrelated = Authority(root / "client" / "unrelated-ca", "some other CA")
    impostor = Authority(root / "client" / "impostor-ca", "flareflow test CA")  # the right name, another key
    server = TLSPostgres(bin_dir, root / "server", ca.issue("server", "localhost", server=True), ca.files)
    password = secrets.token_urlsafe(24)
    try:
        server.start()
        server.admin(f"CREATE ROLE {USER} LOGIN PASSWORD '{password}'; CREATE ROLE certuser LOGIN")
        client = ca.issue("certuser", "certuser", server=False)
        yield TLSSetup(server, password, ca.files, (unrelated.files, impostor.files), client)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _connect_with(monkeypatch: pytest.MonkeyPatch, setup: TLSSetup, *, host: str = "localhost",
                  user: str = USER, password: str | None = None, **extras: str) -> Connection:
    """Define the Airflow connection as an ``AIRFLOW_CONN_*`` URI and open it with ``connect``."""
    userinfo = quote(user) + (f":{quote(password, safe='')}" if password else "")
    uri = f"postgresql://{userinfo}@{host}:{setup.server.port}/postgres?{urlencode(extras)}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", uri)
    return connect(CONN_ID)


def _session_tls(conn: Connection) -> tuple[bool, str, str]:
    with conn.cursor() as cur:
        cur.execute("SELECT ssl, version, current_user FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        row = cur.fetchone()
    assert row is not None
    return bool(row[0]), str(row[1]), str(row[2])


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_verify_full_with_the_servers_ca_connects_over_tls(monkeypatch: pytest.MonkeyPatch, tls: TLSSetup,
                                                           host: str) -> None:
    conn = _connect_with(monkeypatch, tls, host=host, password=tls.password, sslmode="verify-full",
                         sslrootcert=str(tls.ca.cert))
    try:
        on, version, user = _session_tls(conn)
        assert (on, user) == (True, USER)
        assert version.startswith("TLSv1.")
        assert conn.info.dsn_parameters["sslmode"] == "verify-full"
    finally:
        conn.close()


@pytest.mark.parametrize(("wrong", "reason"), [(0, "certificate verify failed"), (1, "signature failure")])
def test_a_connection_presenting_the_wrong_ca_is_refused(monkeypatch: pytest.MonkeyPatch, tls: TLSSetup, wrong: int,
                                                         reason: str) -> None:
    for mode in ("verify-full", "verify-ca"):
        with pytest.raises(psycopg2.OperationalError, match=f"SSL error: .*{reason}"):
            _connect_with(monkeypatch, tls, password=tls.password, sslmode=mode,
                          sslrootcert=str(tls.wrong_cas[wrong].cert))


def test_the_server_refuses_plaintext(monkeypatch: pytest.MonkeyPatch, tls: TLSSetup) -> None:
    # the sslmode extra really reaches libpq: with it disabled, the TLS-only server has no entry for us
    with pytest.raises(psycopg2.OperationalError, match="no encryption"):
        _connect_with(monkeypatch, tls, password=tls.password, sslmode="disable")


def test_a_client_certificate_logs_in_without_a_password(monkeypatch: pytest.MonkeyPatch, tls: TLSSetup) -> None:
    conn = _connect_with(monkeypatch, tls, user="certuser", sslmode="verify-full", sslrootcert=str(tls.ca.cert),
                         sslcert=str(tls.client.cert), sslkey=str(tls.client.key))
    try:
        assert _session_tls(conn)[::2] == (True, "certuser")
    finally:
        conn.close()
    with pytest.raises(psycopg2.OperationalError):  # the same user without its certificate
        _connect_with(monkeypatch, tls, user="certuser", sslmode="verify-full", sslrootcert=str(tls.ca.cert))


def test_extras_win_and_the_hooks_own_extras_stay_out() -> None:
    from airflow.sdk import Connection as AirflowConnection

    conn = AirflowConnection(conn_id="w", conn_type="postgres", host="db.example.org", login="u", password="p",
                             schema="wh", port=5433, extra=json.dumps({
                                 "sslmode": "verify-full", "sslrootcert": "/ca.pem", "application_name": "mine",
                                 "connect_timeout": 7, "cursor": "realdictcursor", "sqlalchemy_scheme": "x"}))
    assert connect_kwargs(conn) == {
        "host": "db.example.org", "port": 5433, "user": "u", "password": "p", "dbname": "wh",
        "application_name": "mine", "sslmode": "verify-full", "sslrootcert": "/ca.pem", "connect_timeout": 7,
    }
    iam = AirflowConnection(conn_id="w", conn_type="postgres", host="h", extra=json.dumps({"iam": True}))
    with pytest.raises(ValueError, match="'w': extra iam is not supported"):
        connect_kwargs(iam)
