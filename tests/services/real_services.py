"""Airflow's real services for the tests: CeleryExecutor, two workers, a real login, databases of their own.

:func:`start_services` brings up, on the session's local stack, a scheduler, dag-processor, triggerer,
an api-server (UI, REST API, Execution API) and two Celery workers (``worker-a`` serving task logs,
``worker-b`` with ``--skip-serve-logs``, one task process each) on a Redis broker
(:mod:`flareflow.local.workers`). They share nothing with the rest of the suite but the stack's
PostgreSQL server, MLflow server and NVFlare federation:

- their own metadata database (also Celery's result backend) and warehouse database, both owned by a
  role with a password, which the server requires (SCRAM) when it is the stack's embedded one;
- their own config folder: the project's configs with small jobs (2 rounds, a short SHAP) and an MLflow
  experiment and registered model of their own, so the suite's model versions stay as they were;
- SimpleAuthManager with real users and passwords (``researcher`` viewer, ``operator`` op, ``admin``),
  fresh JWT and API secrets; the scheduler's own cron runs are off (runs come from triggers and
  backfills only).

:class:`AirflowServices` is what tests get: the api-server's URL, tokens of real users, helpers that
trigger runs and backfills through the REST API and wait for them, and every secret the services know.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import yaml
from psycopg2 import sql

from benchmarks._airflow import FINISHED, Airflow, connect_db, query, running
from benchmarks._slots import Outcome
from flareflow.config.loader import CONFIG_FILES, deep_merge
from flareflow.local.cli import DAG_ID
from flareflow.local.stack import Stack
from flareflow.local.workers import Broker, find_broker, workers

log = logging.getLogger(__name__)

#: the users of the services' SimpleAuthManager and their roles
ROLES = {"researcher": "viewer", "operator": "op", "admin": "admin"}
#: what every run on these services uses instead of the project's configs: small jobs, own MLflow names
SMALL_JOBS: dict[str, Any] = {
    "federation": {"poll_interval_s": 1},
    "training": {"rounds": 2, "local_epochs": 1},
    "shap": {"samples": 20, "background_size": 5, "max_rows": 20},
    "mlflow": {"experiment": "flareflow-services-test", "registered_model": "flareflow-services-test"},
}
WORKERS = 2
WORKER_SLOTS = 1


def write_config_dir(source: Path, target: Path, overrides: Mapping[str, Any]) -> Path:
    """Copy the config files with ``overrides`` merged into every section they already have.

    :param source: the project's config folder
    :param target: the new folder
    :param overrides: sections and keys to change
    """
    target.mkdir(parents=True)
    for name in CONFIG_FILES:
        data = yaml.safe_load((source / name).read_text()) or {}
        merged = {key: deep_merge(value, overrides[key]) if key in overrides and isinstance(value, dict) else value
                  for key, value in data.items()}
        (target / name).write_text(yaml.safe_dump(merged, sort_keys=False))
    return target


def with_credentials(base_url: str, user: str, password: str, database: str) -> str:
    """Return ``base_url`` (``postgresql://user@host:port``) for another user, password and database."""
    parts = urlsplit(base_url)
    netloc = f"{quote(user)}:{quote(password, safe='')}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc, path=f"/{database}"))


@contextmanager
def password_role(stack: Stack, name: str) -> Iterator[str]:
    """Create a login role with a random password on the stack's server, required when the server is ours.

    When the server is the stack's embedded one (trust for everyone), a ``pg_hba.conf`` line put
    first makes it ask this role for its password (SCRAM); it is taken out again at the end, with
    the role.

    :param stack: the stack
    :param name: the role's name
    """
    password = secrets.token_urlsafe(24)
    server = stack.database()
    hba = stack.embedded_postgres().data / "pg_hba.conf" if server.managed else None
    line = f"host all {name} 127.0.0.1/32 scram-sha-256\n"
    with closing(connect_db(server.url("postgres"))) as admin:
        query(admin, "SET password_encryption = 'scram-sha-256'")
        query(admin, sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(name)).as_string(admin),
              password)
        if hba is not None:
            stat = hba.stat()
            hba.write_text(line + hba.read_text())
            shutil.chown(hba, stat.st_uid, stat.st_gid)
            query(admin, "SELECT pg_reload_conf()")
        try:
            yield password
        finally:
            if hba is not None:
                hba.write_text(hba.read_text().replace(line, "", 1))
                query(admin, "SELECT pg_reload_conf()")
            query(admin, sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)).as_string(admin))


@contextmanager
def owned_databases(stack: Stack, owner: str, names: Sequence[str]) -> Iterator[None]:
    """Create databases owned by ``owner`` on the stack's server; drop them (sessions and all) at the end."""
    with closing(connect_db(stack.database().url("postgres"))) as admin:
        for name in names:
            query(admin, sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner))
                  .as_string(admin))
        try:
            yield
        finally:
            for name in names:
                query(admin, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                      .as_string(admin))


@dataclass
class AirflowServices:
    """Running Airflow services with a real login, and helpers to run the DAG through the REST API.

    :param airflow: the processes (``benchmarks._airflow.Airflow``)
    :param passwords: user name -> password (roles in ``ROLES``)
    :param secrets: what must never be written anywhere: name -> value
    :param warehouse_url: the services' warehouse (psycopg2 URL, with its password)
    :param config_dir: the configs every run on these services uses
    """

    airflow: Airflow
    passwords: dict[str, str]
    secrets: dict[str, str]
    warehouse_url: str
    config_dir: Path
    _tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Return the api-server's base URL."""
        return self.airflow.api_url

    def token(self, user: str = "operator") -> str:
        """Return a JWT of a real user, from ``POST /auth/token`` with its password (cached).

        :param user: one of ``ROLES``
        """
        if user not in self._tokens:
            reply = httpx.post(f"{self.url}/auth/token", json={"username": user, "password": self.passwords[user]},
                               timeout=60)
            if reply.status_code != 201:
                raise RuntimeError(f"login of {user} failed: {reply.status_code} {reply.text}")
            self._tokens[user] = str(reply.json()["access_token"])
        return self._tokens[user]

    def request(self, method: str, path: str, *, user: str | None = "operator", **kwargs: Any) -> httpx.Response:
        """Send a request to the api-server, as ``user`` (Bearer token) or, with None, without credentials."""
        headers = dict(kwargs.pop("headers", {}))
        if user is not None:
            headers["Authorization"] = f"Bearer {self.token(user)}"
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=120, **kwargs)

    def api(self, method: str, path: str, *, user: str = "operator", **kwargs: Any) -> Any:
        """Call the REST API (``/api/v2`` + ``path``) as ``user``; return the JSON answer or raise with it."""
        reply = self.request(method, f"/api/v2{path}", user=user, **kwargs)
        if reply.status_code >= 300:
            raise RuntimeError(f"{method} /api/v2{path} as {user}: {reply.status_code} {reply.text[:2000]}")
        return reply.json() if reply.content else None

    def set_paused(self, paused: bool, dag_id: str = DAG_ID) -> None:
        """Pause or unpause a DAG (runs of a paused DAG wait)."""
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": paused})

    def wait_for_dag(self, dag_id: str, timeout_s: float = 300) -> None:
        """Wait until the dag-processor has parsed a DAG (of any bundle) into the metadata database."""
        deadline = time.monotonic() + timeout_s
        with closing(self.airflow.metadata_db()) as conn:
            while not query(conn, "SELECT 1 FROM dag d JOIN serialized_dag s ON s.dag_id = d.dag_id "
                                  "WHERE d.dag_id = %s AND NOT d.is_stale", dag_id):
                self.airflow.check_alive()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the dag-processor did not parse {dag_id} within {timeout_s:.0f}s")
                time.sleep(2)

    def dag_run(self, run_id: str, dag_id: str = DAG_ID) -> dict[str, Any]:
        """Return a run as the REST API describes it."""
        return dict(self.api("GET", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"))

    def delete_run(self, run_id: str) -> None:
        """Delete a run of the DAG through the REST API."""
        self.api("DELETE", f"/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}")

    def hitl_details(self, run_id: str = "~", **filters: Any) -> list[dict[str, Any]]:
        """Return the human-in-the-loop requests of a run of the DAG (``~``: of every run)."""
        path = f"/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='~')}/hitlDetails"
        return list(self.api("GET", path, params=filters)["hitl_details"])

    def answer(self, run_id: str, task_id: str, option: str, comment: str = "", user: str = "operator") -> Any:
        """Answer a run's human-in-the-loop request through the REST API, as ``user``."""
        path = f"/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/-1/hitlDetails"
        body = {"chosen_options": [option], "params_input": {"comment": comment}}
        return self.api("PATCH", path, user=user, json=body)

    def restart_scheduler(self, settings: Mapping[str, str]) -> None:
        """Restart the scheduler alone with further settings (e.g. its own cron and asset-triggered runs on)."""
        self.airflow.extra_env = {**self.airflow.extra_env, **settings}
        scheduler, env = next((service, env) for service, env in self.airflow.services()
                              if service.name == "airflow-scheduler")
        scheduler.stop()
        scheduler.start(env, cwd=self.airflow.stack.project)

    def trigger(self, logical_date: str | None, conf: Mapping[str, Any] | None = None) -> str:
        """Create a manual run through the REST API; return its run id.

        :param logical_date: ISO date-time; the run covers the month before it (None: a run with no
            logical date and no data interval)
        :param conf: the run's params
        """
        body = {"logical_date": logical_date, "conf": dict(conf or {})}
        return str(self.api("POST", f"/dags/{DAG_ID}/dagRuns", json=body)["dag_run_id"])

    def backfill(self, first_month: str, last_month: str, conf: Mapping[str, Any] | None = None) -> list[str]:
        """Create a backfill of data months ``YYYY-MM`` through the REST API; return its run ids in order.

        :param first_month: the first data month
        :param last_month: the last data month
        :param conf: the runs' params
        """
        body = {"dag_id": DAG_ID, "from_date": f"{first_month}-01T00:00:00Z", "to_date": f"{last_month}-28T00:00:00Z",
                "reprocess_behavior": "none", "max_active_runs": 10, "dag_run_conf": dict(conf or {})}
        backfill_id = self.api("POST", "/backfills", json=body)["id"]
        with closing(self.airflow.metadata_db()) as conn:
            rows = query(conn, "SELECT run_id FROM dag_run WHERE backfill_id = %s ORDER BY logical_date", backfill_id)
        return [str(row[0]) for row in rows]

    def run_state(self, run_id: str) -> str:
        """Return a run's state, from the REST API."""
        return str(self.api("GET", f"/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}")["state"])

    def wait(self, run_ids: Sequence[str], timeout_s: float = 2400) -> dict[str, str]:
        """Wait until every run has ended; return their states (raise on timeout or a dead service)."""
        deadline = time.monotonic() + timeout_s
        while True:
            states = {run_id: self.run_state(run_id) for run_id in run_ids}
            if all(state in FINISHED for state in states.values()):
                return states
            self.airflow.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"runs not finished after {timeout_s:.0f}s: {states}")
            time.sleep(3)

    def task_instances(self, run_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Return the runs' task instances: run, task, state, try, and the worker that last ran it."""
        with closing(self.airflow.metadata_db()) as conn:
            rows = query(conn, "SELECT run_id, task_id, state, try_number, hostname FROM task_instance "
                               "WHERE dag_id = %s AND run_id = ANY(%s) ORDER BY run_id, task_id", DAG_ID, list(run_ids))
        return [dict(zip(("run_id", "task_id", "state", "try_number", "hostname"), row, strict=True)) for row in rows]

    def data_months(self, run_ids: Sequence[str]) -> dict[str, str]:
        """Return run id -> the data month ``YYYY-MM`` the run covered, as the warehouse recorded it.

        (A run without a logical date has no data interval in Airflow: the pipeline chose its month.)
        """
        with closing(connect_db(self.warehouse_url)) as conn:
            rows = query(conn, "SELECT run_id, to_char(data_interval_start AT TIME ZONE 'UTC', 'YYYY-MM'), "
                               "data_interval_end - data_interval_start > interval '27 days' FROM runs "
                               "WHERE run_id = ANY(%s)", list(run_ids))
        return {str(run_id): str(month) if whole else f"not a month from {month}" for run_id, month, whole in rows}

    def warehouse(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """Return the rows of a query on the services' warehouse."""
        with closing(connect_db(self.warehouse_url)) as conn:
            return query(conn, sql, *params)

    def executions(self, run_ids: Sequence[str]) -> list[tuple[str, str, str]]:
        """Return (run, task, worker) for every time a worker started running a task (deferred tasks resume)."""
        with closing(self.airflow.metadata_db()) as conn:
            rows = query(conn, "SELECT run_id, task_id, extra FROM log WHERE dag_id = %s AND run_id = ANY(%s) "
                               "AND event = 'running' ORDER BY dttm", DAG_ID, list(run_ids))
        return [(str(run_id), str(task_id), str(json.loads(extra or "{}").get("host_name")))
                for run_id, task_id, extra in rows]


@dataclass
class CeleryRuns:
    """The monthly run and the backfill, executed at once by the Celery workers.

    :param monthly: the monthly run's id
    :param backfilled: the backfill's run ids, oldest month first
    :param outcome: run states and the slot sampler's figures
    :param task_instances: every task instance of the three runs (with ``hostname``: the worker that ran it)
    :param executions: (run, task, worker) each time a worker started a task (deferred tasks resume)
    :param data_months: run id -> the data month it covered (the warehouse's record)
    :param approvals_seen: run id -> how its approval task looked while it waited (``approver.Waiting``)
    :param approvals_answered: run id -> the REST API's answer to the approval given
    """

    monthly: str
    backfilled: list[str]
    outcome: Outcome
    task_instances: list[dict[str, Any]]
    executions: list[tuple[str, str, str]]
    data_months: dict[str, str]
    approvals_seen: dict[str, Any] = field(default_factory=dict)
    approvals_answered: dict[str, Any] = field(default_factory=dict)

    def tasks_per_worker(self) -> Counter[str]:
        """Return how many task instances each worker ran (the last try's worker)."""
        return Counter(str(ti["hostname"]) for ti in self.task_instances if ti["state"] == "success")

    def executions_per_worker(self) -> Counter[str]:
        """Return how many task executions each worker started (a deferred task resumes: two executions)."""
        return Counter(worker for _, _, worker in self.executions)


@contextmanager
def start_services(stack: Stack, root: Path, extra_env: Mapping[str, str] | None = None) -> Iterator[AirflowServices]:
    """Bring the services up on ``stack``; stop them and remove their databases and broker at the end.

    :param stack: a running local stack
    :param root: a new folder for their files (``run/`` is theirs to write; ``secrets/`` is not scanned)
    :param extra_env: further settings of every Airflow process, e.g.
        ``AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE=True`` for asset-triggered runs (it also lets the
        scheduler create the DAG's latest cron run once unpaused)
    """
    tag = secrets.token_hex(4)
    role = f"flareflow_services_{tag}"
    metadata_db, warehouse_db = f"flareflow_services_airflow_{tag}", f"flareflow_services_warehouse_{tag}"
    run_dir, secrets_dir = root / "run", root / "secrets"
    run_dir.mkdir(parents=True)
    secrets_dir.mkdir(mode=0o700)
    passwords = {user: secrets.token_urlsafe(16) for user in ROLES}
    passwords_file = secrets_dir / "simple_auth_manager_passwords.json"
    passwords_file.write_text(json.dumps(passwords))
    config_dir = write_config_dir(stack.config_dir, root / "configs", SMALL_JOBS)
    jwt_secret, api_secret_key = secrets.token_urlsafe(32), secrets.token_urlsafe(32)

    with password_role(stack, role) as db_password, owned_databases(stack, role, [metadata_db, warehouse_db]):
        base = stack.database().base_url
        warehouse_url = with_credentials(base, role, db_password, warehouse_db)
        broker: Broker = find_broker(root / "redis")
        try:
            airflow = Airflow(
                stack, run_dir, slots=WORKERS * WORKER_SLOTS, workers=workers(run_dir, WORKERS, WORKER_SLOTS),
                broker_url=broker.url, metadata_url=with_credentials(base, role, db_password, metadata_db),
                api_apps="all",
                extra_env={
                    "AIRFLOW_HOME": str(root / "airflow-home"),
                    "FLAREFLOW_CONFIG_DIR": str(config_dir),
                    "AIRFLOW_CONN_FLAREFLOW_WAREHOUSE": warehouse_url,
                    "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret,
                    "AIRFLOW__API__SECRET_KEY": api_secret_key,
                    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
                    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in ROLES.items()),
                    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
                    **(extra_env or {}),
                },
            )
            found = {"jwt_secret": jwt_secret, "api_secret_key": api_secret_key, "database_password": db_password,
                     **{f"password_of_{user}": password for user, password in passwords.items()}}
            with running(airflow, migrate=True):
                yield AirflowServices(airflow, passwords, found, warehouse_url, config_dir)
        finally:
            broker.release()
