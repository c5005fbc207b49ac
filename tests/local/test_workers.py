"""Celery workers on one host: their names, which one serves logs, and the Redis broker they share.

The broker tests run a private ``redis-server`` (never the machine's shared Redis, whose databases
other people use): claiming, skipping a database in use, releasing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from flareflow.local.workers import (
    CLAIM_KEY,
    HOSTNAME_CALLABLE,
    Broker,
    celery_env,
    claim_database,
    start_redis,
    worker_hostname,
    workers,
)


def test_two_workers_have_their_own_names_and_only_the_first_serves_logs(tmp_path: Path) -> None:
    first, second = workers(tmp_path, 2, concurrency=3)
    assert (first.name, second.name) == ("worker-a", "worker-b")
    argv_a, argv_b = first.service().argv, second.service().argv
    assert list(argv_a[1:]) == ["celery", "worker", "--celery-hostname", "worker-a", "--concurrency", "3"]
    assert "--skip-serve-logs" in argv_b and "--skip-serve-logs" not in argv_a
    env = second.env({"A": "1"})
    assert env == {"A": "1", "FLAREFLOW_WORKER_NAME": "worker-b", "AIRFLOW__CORE__HOSTNAME_CALLABLE": HOSTNAME_CALLABLE}
    with pytest.raises(ValueError, match="between 1 and 26"):
        workers(tmp_path, 0)


def test_airflow_records_the_workers_name_through_the_hostname_callable(tmp_path: Path) -> None:
    # in a fresh interpreter, as a worker's task supervisor: Airflow's own lookup of the host name
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "FLAREFLOW_WORKER_NAME": "worker-b",
           "AIRFLOW__CORE__HOSTNAME_CALLABLE": HOSTNAME_CALLABLE}
    code = "from airflow.sdk.api.client import get_hostname; print(get_hostname())"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.stdout.strip().splitlines()[-1] == "worker-b", result.stderr[-2000:]


def test_without_a_name_a_worker_is_its_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLAREFLOW_WORKER_NAME", raising=False)
    import socket

    assert worker_hostname() == socket.getfqdn()


def test_celery_settings_keep_results_in_postgresql_with_psycopg2() -> None:
    env = celery_env("redis://127.0.0.1:6379/15", "postgresql://u:p@127.0.0.1:5/flareflow_airflow", 2)
    assert env == {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": "redis://127.0.0.1:6379/15",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+postgresql+psycopg2://u:p@127.0.0.1:5/flareflow_airflow",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
    }


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Broker]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    broker = start_redis(tmp_path / "redis")
    try:
        yield broker
    finally:
        broker.release()


def test_a_private_redis_answers_until_released(private_redis: Broker) -> None:
    client = redis.Redis.from_url(private_redis.url, socket_timeout=5)
    assert client.ping()
    assert private_redis.service is not None and private_redis.service.pid() is not None
    private_redis.release()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(private_redis.url, socket_timeout=2).ping()


def test_claims_skip_used_databases_and_release_only_their_own(private_redis: Broker) -> None:
    port = int(private_redis.url.rsplit(":", 1)[1].split("/")[0])
    redis.Redis(port=port, db=14).set("somebody-else", "1")
    first = claim_database("127.0.0.1", port)
    second = claim_database("127.0.0.1", port)
    assert (first.url, second.url) == (f"redis://127.0.0.1:{port}/15", f"redis://127.0.0.1:{port}/13")
    queue = redis.Redis.from_url(first.url)
    queue.set("_kombu.binding.default", "x")
    first.release()
    assert queue.dbsize() == 0  # flushed: celery's leftovers and the claim
    redis.Redis.from_url(second.url).set(CLAIM_KEY, "not-ours")
    second.release()
    assert redis.Redis.from_url(second.url).get(CLAIM_KEY) == b"not-ours"
    assert redis.Redis(port=port, db=14).get("somebody-else") == b"1"
    with pytest.raises(RuntimeError, match="no empty database"):
        claim_database("127.0.0.1", port, databases=range(14, 13, -1))
