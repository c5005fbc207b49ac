"""No secret in the logs: nothing the Celery runs wrote holds the stack's secrets.

The secrets: the services' JWT secret and API secret key, the password of the database role that owns
their metadata database (and Celery's result backend) and warehouse, the users' passwords. Each is
searched as is, URL-encoded and hex-encoded (``bytea`` columns), in everything the three runs wrote:
task logs and the services' own logs, the work folder (job exports, results, the dashboard), the
dashboard as served, MLflow's artifacts, server log and database, and the services' metadata and
warehouse databases.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import closing
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg2
import pytest
from real_services import AirflowServices, CeleryRuns

from benchmarks._airflow import connect_db, query
from flareflow.local.stack import Stack

pytestmark = pytest.mark.services


def variants(secrets: Mapping[str, str]) -> dict[str, bytes]:
    """Return every form a secret may take when written: as is, URL-encoded, hex (``bytea``)."""
    found = {}
    for name, value in secrets.items():
        found[name] = value.encode()
        found[f"{name} (URL-encoded)"] = quote(value, safe="").encode()
        found[f"{name} (hex)"] = value.encode().hex().encode()
    return found


def files_under(*roots: Path) -> Iterator[Path]:
    """Yield every file under the roots."""
    for root in roots:
        yield from (path for path in sorted(root.rglob("*")) if path.is_file())


def database_text(url: str) -> Iterator[tuple[str, bytes]]:
    """Yield (table, every row as text) for each table of a database."""
    with closing(connect_db(url)) as conn:
        tables = [row[0] for row in query(conn, "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) "
                                                "FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', "
                                                "'information_schema')")]
        for table in tables:
            rows = query(conn, f"SELECT t::text FROM {table} t")  # table names come from the catalogue
            yield table, "\n".join(str(row[0]) for row in rows).encode()


def findings(places: Iterable[tuple[str, bytes]], secrets: Mapping[str, bytes]) -> list[str]:
    """Return 'place: secret' for each secret found in a place's content."""
    return [f"{place}: {name}" for place, content in places for name, value in secrets.items() if value in content]


def test_the_scan_finds_a_planted_secret(tmp_path: Path) -> None:
    planted = tmp_path / "logs" / "task.log"
    planted.parent.mkdir()
    planted.write_text("connecting to postgresql://user:s3cr%2Ft@host/db\n")
    places = [(str(path), path.read_bytes()) for path in files_under(tmp_path)]
    assert findings(places, variants({"database_password": "s3cr/t"})) == [
        f"{planted}: database_password (URL-encoded)"]


def test_no_secret_in_anything_the_runs_wrote(airflow_services: AirflowServices, celery_runs: CeleryRuns,
                                              stack: Stack) -> None:
    services, run_dir = airflow_services, airflow_services.airflow.run_dir
    task_logs = list(files_under(run_dir / "logs"))
    # the scan covers what it should: every task's log, the rendered dashboard, MLflow's artifacts
    assert {path.parts[-2] for path in task_logs if path.name.endswith(".log")} >= {
        f"task_id={ti['task_id']}" for ti in celery_runs.task_instances if ti["state"] == "success"}
    dashboard = run_dir / "work" / "dashboard" / "index.html"
    assert dashboard.is_file()
    mlflow_files = list(files_under(stack.home / "mlflow"))
    assert mlflow_files

    files = [*files_under(run_dir), *mlflow_files, stack.run_dir / "mlflow.log"]
    places: list[tuple[str, bytes]] = [(str(path), path.read_bytes()) for path in files if path.is_file()]
    places.append(("GET /flareflow/", services.request("GET", "/flareflow/", user="researcher").content))
    for name, url in [("metadata", services.airflow.database_url), ("warehouse", services.warehouse_url),
                      ("mlflow", stack.database().url("flareflow_mlflow"))]:
        places += [(f"{name} database {table}", text) for table, text in database_text(url)]
    assert len(places) > 50
    assert findings(places, variants(services.secrets)) == []


def test_the_database_password_is_a_real_one(airflow_services: AirflowServices, stack: Stack) -> None:
    # the role owning the services' databases cannot log in without it: finding none is meaningful
    if not stack.database().managed:
        pytest.skip("the stack's PostgreSQL is an existing server: its pg_hba.conf is not ours to change")
    url = urlsplit(airflow_services.warehouse_url)
    without = urlunsplit(url._replace(netloc=f"{url.username}@{url.hostname}:{url.port}"))
    with pytest.raises(psycopg2.OperationalError, match="password"):
        psycopg2.connect(without).close()
    psycopg2.connect(airflow_services.warehouse_url).close()
