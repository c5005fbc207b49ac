"""Calendar versions ``YYYY.MM.N``: formatting, parsing, ordering, and their allocation in the warehouse.

Allocation runs against a real PostgreSQL (``FLAREFLOW_TEST_DATABASE_URL`` or an embedded server, see
``tests/postgres_helpers.py``); MLflow is replaced by a small fake recording the registry calls, so
its failures can be injected.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import psycopg2
import psycopg2.errors
import pytest
from mlflow.exceptions import MlflowException
from psycopg2.extensions import connection as Connection
from sample_results import MODEL, SITES

from flareflow.registry import CALENDAR_TAG, RUN_TAG, RegisteredModel, calendar_version, parse_calendar_version
from flareflow.registry.mlflow_registry import register_calendar_version
from flareflow.warehouse.loaders import RunInfo, discard_run
from flareflow.warehouse.models import recorded_version

Connect = Callable[[], Connection]


# --- formatting and parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize(("year", "month", "n", "text"), [
    (2026, 3, 1, "2026.03.1"), (2026, 12, 10, "2026.12.10"), (2025, 1, 123, "2025.01.123"),
    (987, 7, 2, "0987.07.2"),
])
def test_calendar_version_format(year: int, month: int, n: int, text: str) -> None:
    assert calendar_version(year, month, n) == text
    assert parse_calendar_version(text) == (year, month, n)


def test_calendar_versions_round_trip() -> None:
    for year in (1999, 2025, 2026, 9999):
        for month in range(1, 13):
            for n in (1, 2, 9, 10, 11, 99, 100, 1000):
                assert parse_calendar_version(calendar_version(year, month, n)) == (year, month, n)


def test_calendar_versions_order_by_year_month_n_not_as_strings() -> None:
    versions = ["2026.11.1", "2026.10.10", "2027.01.1", "2026.10.2", "2025.12.3", "2026.10.1"]
    expected = ["2025.12.3", "2026.10.1", "2026.10.2", "2026.10.10", "2026.11.1", "2027.01.1"]
    assert sorted(versions, key=parse_calendar_version) == expected
    assert sorted(versions) != expected  # string order puts 2026.10.10 before 2026.10.2
    assert parse_calendar_version("2026.10.2") < parse_calendar_version("2026.10.10") \
        < parse_calendar_version("2026.11.1")


@pytest.mark.parametrize(("year", "month", "n"), [
    (2026, 0, 1), (2026, 13, 1), (2026, -3, 1), (2026, 3, 0), (2026, 3, -1),
])
def test_calendar_version_rejects_bad_month_or_n(year: int, month: int, n: int) -> None:
    with pytest.raises(ValueError, match="no calendar version"):
        calendar_version(year, month, n)


@pytest.mark.parametrize("text", [
    "", "2026.3.1", "2026.003.1", "2026.00.1", "2026.13.1", "2026.99.1", "2026.03.0", "2026.03.01",
    "2026.03.-1", "2026.03", "2026.03.1.1", "26.03.1", "02026.03.1", "2026-03-1", "2026/03/1", "v2026.03.1",
    " 2026.03.1", "2026.03.1 ", "2026.03.a", "2026.03.1rc1",
])
def test_parse_calendar_version_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a calendar version"):
        parse_calendar_version(text)


@pytest.mark.parametrize("text", ["2026.03.1\n", "\uff12\uff10\uff12\uff16.03.1"])
def test_parse_calendar_version_rejects_newline_and_non_ascii_digits(text: str) -> None:
    with pytest.raises(ValueError, match="not a calendar version"):
        parse_calendar_version(text)


# --- allocation in the warehouse ----------------------------------------------------------------------


class FakeMlflow:
    """The MLflow client calls the registry makes, recorded; ``fail_create`` injects a registry failure."""

    def __init__(self, *, fail_create: bool = False, create_delay: float = 0.0) -> None:
        self.fail_create, self.create_delay = fail_create, create_delay
        self.lock = threading.Lock()
        self.models: set[str] = set()
        self.created: list[dict[str, Any]] = []
        self.deleted: list[tuple[str, str]] = []
        self.run_tags: dict[tuple[str, str], str] = {}

    def get_registered_model(self, name: str) -> SimpleNamespace:
        if name not in self.models:
            raise MlflowException(f"Registered Model with name={name} not found")
        return SimpleNamespace(name=name)

    def create_registered_model(self, name: str, **_: Any) -> SimpleNamespace:
        with self.lock:
            self.models.add(name)
        return SimpleNamespace(name=name)

    def create_model_version(self, name: str, source: str, run_id: str | None = None,
                             tags: dict[str, str] | None = None, **kwargs: Any) -> SimpleNamespace:
        if self.fail_create:
            raise MlflowException("the model registry is unavailable")
        time.sleep(self.create_delay)  # a slow registry widens any race between concurrent runs
        with self.lock:
            version = str(len(self.created) + 1)  # MLflow numbers versions 1, 2, ... per model
            self.created.append({"name": name, "source": source, "run_id": run_id, "tags": dict(tags or {}),
                                 "version": version, **kwargs})
        return SimpleNamespace(name=name, version=version)

    def delete_model_version(self, name: str, version: str) -> None:
        with self.lock:
            self.deleted.append((name, str(version)))

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        with self.lock:
            self.run_tags[(run_id, key)] = value


def make_run(year: int, month: int, suffix: str = "", *, conn: Connection | None = None) -> RunInfo:
    """Return a run of that data month; with ``conn``, also record it in ``runs`` (as ``load_stats`` does)."""
    start = datetime(year, month, 1, 3, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, 3, tzinfo=UTC)
    run = RunInfo(run_id=f"scheduled__{end.isoformat()}{suffix}", dag_id="federated_retraining",
                  data_interval_start=start, data_interval_end=end,
                  config_fingerprint=f"fp-{year}-{month}{suffix}", sites=SITES)
    if conn is not None:
        with conn, conn.cursor() as cur:
            cur.execute("INSERT INTO runs (run_id, dag_id, data_interval_start, data_interval_end,"
                        " config_fingerprint, sites, status) VALUES (%s, %s, %s, %s, %s, %s, 'running')",
                        (run.run_id, run.dag_id, start, end, run.config_fingerprint, list(SITES)))
    return run


def register(conn: Connection, client: FakeMlflow, run: RunInfo, model: str = MODEL) -> RegisteredModel:
    return register_calendar_version(conn, client, run=run, model_name=model,  # type: ignore[arg-type]
                                     model_id=f"m-{run.run_id}", parent_id=f"parent-{run.run_id}",
                                     sites=run.sites)


def query(conn: Connection, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with conn, conn.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchall()


def model_versions(conn: Connection) -> list[tuple[Any, ...]]:
    return query(conn, "SELECT run_id, registered_model, year, month, n, calendar_version, mlflow_version,"
                       " mlflow_run_id, config_fingerprint FROM model_versions ORDER BY registered_model, n")


def calendar_numbers(conn: Connection) -> list[tuple[Any, ...]]:
    return query(conn, "SELECT registered_model, year, month, n, run_id FROM calendar_numbers"
                       " ORDER BY registered_model, year, month, n")


def test_runs_of_a_month_get_consecutive_numbers(warehouse: Connection) -> None:
    client = FakeMlflow()
    first, second = make_run(2026, 3, conn=warehouse), make_run(2026, 3, "__manual", conn=warehouse)
    assert register(warehouse, client, first) == RegisteredModel("2026.03.1", "1", f"parent-{first.run_id}")
    assert register(warehouse, client, second) == RegisteredModel("2026.03.2", "2", f"parent-{second.run_id}")
    assert client.models == {MODEL}
    assert [(c["name"], c["source"], c["run_id"], c["model_id"]) for c in client.created] == [
        (MODEL, f"models:/m-{run.run_id}", f"parent-{run.run_id}", f"m-{run.run_id}") for run in (first, second)]
    tags = client.created[1]["tags"]
    assert (tags[CALENDAR_TAG], tags[RUN_TAG], tags["sites"]) == ("2026.03.2", second.run_id, ",".join(SITES))
    assert client.run_tags == {(f"parent-{first.run_id}", CALENDAR_TAG): "2026.03.1",
                               (f"parent-{second.run_id}", CALENDAR_TAG): "2026.03.2"}
    assert client.deleted == []
    assert model_versions(warehouse) == [
        (first.run_id, MODEL, 2026, 3, 1, "2026.03.1", "1", f"parent-{first.run_id}", first.config_fingerprint),
        (second.run_id, MODEL, 2026, 3, 2, "2026.03.2", "2", f"parent-{second.run_id}", second.config_fingerprint),
    ]
    assert calendar_numbers(warehouse) == [(MODEL, 2026, 3, 1, first.run_id), (MODEL, 2026, 3, 2, second.run_id)]


def test_numbers_count_per_month_and_model(warehouse: Connection) -> None:
    client = FakeMlflow()
    register(warehouse, client, make_run(2026, 3, conn=warehouse))
    assert register(warehouse, client, make_run(2026, 4, conn=warehouse)).calendar_version == "2026.04.1"
    assert register(warehouse, client, make_run(2027, 3, conn=warehouse)).calendar_version == "2027.03.1"
    assert register(warehouse, client, make_run(2026, 3, "__b", conn=warehouse), model="other-model") \
        .calendar_version == "2026.03.1"
    assert register(warehouse, client, make_run(2026, 3, "__c", conn=warehouse)).calendar_version == "2026.03.2"


def test_reregistering_a_run_retires_its_row_and_takes_a_new_number(warehouse: Connection) -> None:
    client = FakeMlflow()
    run, other = make_run(2026, 3, conn=warehouse), make_run(2026, 3, "__manual", conn=warehouse)
    register(warehouse, client, run)
    register(warehouse, client, other)
    again = register(warehouse, client, run)
    assert again == RegisteredModel("2026.03.3", "3", f"parent-{run.run_id}")
    assert [row[:7] for row in model_versions(warehouse)] == [
        (run.run_id, MODEL, 2026, 3, 1, "2026.03.1", "1"),
        (other.run_id, MODEL, 2026, 3, 2, "2026.03.2", "2"),
        (run.run_id, MODEL, 2026, 3, 3, "2026.03.3", "3"),
    ]
    # the replaced row stays, retired, naming its replacement; the run has one live version
    assert query(warehouse, "SELECT calendar_version, replaced_by FROM model_versions WHERE retired_at IS NOT NULL"
                 ) == [("2026.03.1", "2026.03.3")]
    assert recorded_version(warehouse, MODEL, run.run_id) == ("2026.03.3", "3", f"parent-{run.run_id}")
    # the replaced number stays taken: it is never handed out again
    assert calendar_numbers(warehouse) == [(MODEL, 2026, 3, 1, run.run_id), (MODEL, 2026, 3, 2, other.run_id),
                                           (MODEL, 2026, 3, 3, run.run_id)]
    assert register(warehouse, client, make_run(2026, 3, "__late", conn=warehouse)).calendar_version == "2026.03.4"


def test_a_discarded_runs_number_is_not_reused(warehouse: Connection) -> None:
    client = FakeMlflow()
    failed = make_run(2026, 3, conn=warehouse)
    register(warehouse, client, failed)
    assert discard_run(warehouse, failed.run_id) == 1
    assert model_versions(warehouse) == []
    assert register(warehouse, client, make_run(2026, 3, "__retry", conn=warehouse)).calendar_version == "2026.03.2"


def test_concurrent_registrations_get_distinct_consecutive_numbers(warehouse: Connection, connect: Connect) -> None:
    client = FakeMlflow(create_delay=0.2)
    setup = warehouse
    runs = [make_run(2026, 3, f"__{index}", conn=setup) for index in range(4)]
    connections = [connect() for _ in runs]
    start = threading.Barrier(len(runs))
    results: dict[str, RegisteredModel | BaseException] = {}

    def registrar(conn: Connection, run: RunInfo) -> None:
        start.wait()
        try:
            results[run.run_id] = register(conn, client, run)
        except BaseException as error:  # reported below, not lost in the thread
            results[run.run_id] = error

    threads = [threading.Thread(target=registrar, args=pair) for pair in zip(connections, runs, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(isinstance(result, RegisteredModel) for result in results.values()), results
    assert len(results) == 4
    versions = sorted(result.calendar_version for result in results.values())  # type: ignore[union-attr]
    assert versions == ["2026.03.1", "2026.03.2", "2026.03.3", "2026.03.4"]
    assert sorted(row[4] for row in model_versions(setup)) == [1, 2, 3, 4]
    assert sorted((row[3], row[4]) for row in calendar_numbers(setup)) == sorted(
        (int(result.calendar_version.rsplit(".", 1)[1]), run_id)  # type: ignore[union-attr]
        for run_id, result in results.items())
    assert client.deleted == []


def test_mlflow_failure_records_nothing(warehouse: Connection) -> None:
    run = make_run(2026, 3, conn=warehouse)
    broken = FakeMlflow(fail_create=True)
    with pytest.raises(MlflowException, match="unavailable"):
        register(warehouse, broken, run)
    assert (model_versions(warehouse), calendar_numbers(warehouse)) == ([], [])
    assert (broken.created, broken.deleted, broken.run_tags) == ([], [], {})
    assert warehouse.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_IDLE
    # the number was not used up
    assert register(warehouse, FakeMlflow(), run).calendar_version == "2026.03.1"


def test_warehouse_failure_deletes_the_mlflow_version(warehouse: Connection) -> None:
    client = FakeMlflow()
    register(warehouse, client, make_run(2026, 3, conn=warehouse))
    unknown = make_run(2026, 3, "__never_loaded")  # no runs row: model_versions' foreign key fails
    with pytest.raises(psycopg2.errors.ForeignKeyViolation):
        register(warehouse, client, unknown)
    assert len(client.created) == 2
    assert client.deleted == [(MODEL, client.created[1]["version"])]
    assert (f"parent-{unknown.run_id}", CALENDAR_TAG) not in client.run_tags
    assert [row[3:] for row in calendar_numbers(warehouse)] == [(1, make_run(2026, 3).run_id)]
    assert [row[5] for row in model_versions(warehouse)] == ["2026.03.1"]
