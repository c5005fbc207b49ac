"""Celery workers on one host: the Redis broker, the workers' processes, and how tasks tell them apart.

Used by ``flareflow up --executor celery`` and the real-services tests. The broker, in this order:

1. ``FLAREFLOW_REDIS_URL`` when set (used as is);
2. a Redis answering on 127.0.0.1:6379: a database number of its own, claimed with a marker key in an
   empty database (Redis is often shared; an empty database is one nobody uses), flushed on release;
3. otherwise a private ``redis-server`` on a free port, without persistence.

Airflow records on each task instance the host that ran it (``hostname_callable``); workers on one
machine share one name, so each worker process sets ``FLAREFLOW_WORKER_NAME`` and
``AIRFLOW__CORE__HOSTNAME_CALLABLE`` names :func:`worker_hostname`. Only one worker per host can serve
its task logs over HTTP (one port); the others run with ``--skip-serve-logs`` and their logs are read
from the shared log folder.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from flareflow.local.processes import Service

log = logging.getLogger(__name__)

REDIS_URL_ENV = "FLAREFLOW_REDIS_URL"
WORKER_NAME_ENV = "FLAREFLOW_WORKER_NAME"
HOSTNAME_CALLABLE = "flareflow.local.workers.worker_hostname"
SHARED_REDIS = ("127.0.0.1", 6379)
CLAIM_KEY = "flareflow:broker-claim"


def worker_hostname() -> str:
    """Return this worker's name for Airflow's records (``FLAREFLOW_WORKER_NAME``, else the FQDN)."""
    return os.environ.get(WORKER_NAME_ENV) or socket.getfqdn()


def _answers(host: str, port: int) -> bool:
    import redis

    try:
        return bool(redis.Redis(host=host, port=port, socket_timeout=2).ping())
    except redis.RedisError:
        return False


@dataclass(frozen=True)
class Broker:
    """A Redis database the Celery executor and its workers share.

    :param url: ``redis://host:port/db``
    :param claim: the marker value written into a claimed database of a shared server ('' otherwise)
    :param service: the private ``redis-server`` started for it, if any
    """

    url: str
    claim: str = ""
    service: Service | None = None

    def release(self) -> None:
        """Give the database back: stop the private server, or flush the claimed database if still ours."""
        if self.service is not None:
            self.service.stop()
            return
        if self.claim:
            import redis

            client = redis.Redis.from_url(self.url, socket_timeout=5)
            try:
                if client.get(CLAIM_KEY) == self.claim.encode():
                    client.flushdb()
            except redis.RedisError as err:
                log.warning("could not release the Redis database %s: %s", self.url, err)


def claim_database(host: str, port: int, databases: range = range(15, 0, -1)) -> Broker:
    """Claim the first empty database of a shared Redis server with a marker key.

    :param host: the server's host
    :param port: its port
    :param databases: the database numbers to try, in order (0 is left to whoever uses the default)
    """
    import redis

    token = secrets.token_hex(8)
    for db in databases:
        client = redis.Redis(host=host, port=port, db=db, socket_timeout=5)
        if client.dbsize() == 0 and client.set(CLAIM_KEY, token, nx=True):
            if client.dbsize() == 1:
                return Broker(f"redis://{host}:{port}/{db}", claim=token)
            client.delete(CLAIM_KEY)  # somebody else wrote meanwhile
    raise RuntimeError(f"no empty database on the Redis server {host}:{port} (tried {list(databases)}); "
                       f"set {REDIS_URL_ENV}")


def start_redis(folder: Path, timeout_s: float = 30) -> Broker:
    """Start a private ``redis-server`` on a free port, without persistence, its files under ``folder``.

    :param folder: its pid, log and working folder
    :param timeout_s: how long it may take to answer
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(f"no Redis answers on {SHARED_REDIS[0]}:{SHARED_REDIS[1]} and redis-server is not "
                           f"installed: install Redis or set {REDIS_URL_ENV}")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    folder.mkdir(parents=True, exist_ok=True)
    argv = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
            "--dir", str(folder)]
    service = Service("redis", argv, folder)
    service.start(dict(os.environ))
    deadline = time.monotonic() + timeout_s
    while not _answers("127.0.0.1", port):
        if service.pid() is None or time.monotonic() > deadline:
            service.stop()
            raise RuntimeError(f"redis-server did not answer on port {port}:\n{service.log_tail()}")
        time.sleep(0.2)
    return Broker(f"redis://127.0.0.1:{port}/0", service=service)


def find_broker(folder: Path) -> Broker:
    """Return the broker to use: ``FLAREFLOW_REDIS_URL``, a claimed database of the local Redis, or a new one.

    :param folder: where a private ``redis-server`` keeps its files
    """
    if os.environ.get(REDIS_URL_ENV):
        return Broker(os.environ[REDIS_URL_ENV])
    if _answers(*SHARED_REDIS):
        return claim_database(*SHARED_REDIS)
    return start_redis(folder)


def celery_env(broker_url: str, result_backend: str, concurrency: int) -> dict[str, str]:
    """Return the settings that switch Airflow to the CeleryExecutor.

    :param broker_url: the Redis broker
    :param result_backend: Celery's result store: a PostgreSQL URL (``db+`` is prefixed, psycopg2 forced)
    :param concurrency: task processes per worker
    """
    backend = result_backend.replace("postgresql://", "postgresql+psycopg2://", 1)
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": backend if backend.startswith("db+") else f"db+{backend}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(concurrency),
    }


@dataclass(frozen=True)
class Worker:
    """One ``airflow celery worker`` process.

    :param name: its name, recorded on every task instance it runs (and its Celery node name)
    :param run_dir: where its pid and log files go
    :param concurrency: its task processes
    :param serve_logs: whether it serves task logs over HTTP (one worker per host at most)
    """

    name: str
    run_dir: Path
    concurrency: int = 1
    serve_logs: bool = True

    def service(self) -> Service:
        """Return the worker's process."""
        airflow = str(Path(sys.executable).with_name("airflow"))
        # Celery node name celery@<name>: a second worker of the same name on this broker is refused
        argv = [airflow, "celery", "worker", "--celery-hostname", self.name, "--concurrency", str(self.concurrency)]
        if not self.serve_logs:
            argv.append("--skip-serve-logs")
        return Service(f"airflow-worker-{self.name}", argv, self.run_dir)

    def env(self, base: dict[str, str]) -> dict[str, str]:
        """Return the worker's environment: ``base`` with its name and the hostname callable."""
        return {**base, WORKER_NAME_ENV: self.name, "AIRFLOW__CORE__HOSTNAME_CALLABLE": HOSTNAME_CALLABLE}


def workers(run_dir: Path, count: int, concurrency: int = 1) -> list[Worker]:
    """Return ``count`` workers named ``worker-a``, ``worker-b``, ...; only the first serves logs.

    :param run_dir: where their pid and log files go
    :param count: how many
    :param concurrency: task processes per worker
    """
    if not 1 <= count <= 26:
        raise ValueError(f"workers: between 1 and 26, not {count}")
    return [Worker(f"worker-{chr(ord('a') + index)}", run_dir, concurrency, serve_logs=index == 0)
            for index in range(count)]
