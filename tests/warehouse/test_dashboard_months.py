"""Each month's config in the dashboard's reads, the months to recompute, retired versions, and the
dashboard lock that serializes refresh and render: on a real PostgreSQL."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from psycopg2.extensions import connection as Connection
from sample_results import MODEL, make_run, training_result

from flareflow import pipeline
from flareflow.warehouse.dashboard import StaleMonth, read_dashboard, stale_months
from flareflow.warehouse.loaders import RunInfo, dashboard_lock, load_training, mark_run_succeeded, refresh_views
from flareflow.warehouse.models import record_version, retire_versions

OLD, NEW = "0ld" * 21 + "0", "5e7" * 21 + "5"
Connect = Callable[[], Connection]


def succeed(conn: Connection, run: RunInfo, n: int = 1, mlflow_version: str | None = None) -> None:
    """Record a successful run of the month with a model version, as the DAG leaves it."""
    load_training(conn, run, training_result())
    start = run.data_interval_start
    with conn, conn.cursor() as cur:
        record_version(cur, run_id=run.run_id, model_name=MODEL, year=start.year, month=start.month, n=n,
                       calendar_version=f"{start:%Y.%m}.{n}", mlflow_version=mlflow_version or f"{start:%Y%m}{n:02d}",
                       mlflow_run_id="abc", config_fingerprint=run.config_fingerprint)
    mark_run_succeeded(conn, run.run_id)


def month_run(month: int, fingerprint: str, suffix: str = "") -> RunInfo:
    return dataclasses.replace(make_run(2026, month, suffix), config_fingerprint=fingerprint)


def test_the_months_whose_latest_run_used_another_config_are_stale(warehouse: Connection) -> None:
    march, april, may = month_run(3, OLD), month_run(4, OLD), month_run(5, NEW)
    for run in (march, april, may):
        succeed(warehouse, run)
    # April was recomputed with the current config since: its latest successful run counts
    succeed(warehouse, month_run(4, NEW, "__recomputed"), n=2)
    assert stale_months(warehouse, NEW) == [StaleMonth("2026-03", march.run_id, OLD)]
    assert [m.month for m in stale_months(warehouse, OLD)] == ["2026-04", "2026-05"]
    refresh_views(warehouse)
    data = read_dashboard(warehouse, NEW)
    assert [(f"{m['data_interval_start']:%Y-%m}", data.is_stale(m)) for m in
            sorted(data.models, key=lambda m: m["data_interval_start"])] == [
        ("2026-03", True), ("2026-04", False), ("2026-05", False)]
    assert [f"{m:%Y-%m}" for m in data.stale_months] == ["2026-03"]
    # without a current config nothing is marked
    assert read_dashboard(warehouse).stale_months == []


def test_a_retired_version_stays_recorded_and_out_of_the_views(warehouse: Connection) -> None:
    run = month_run(3, NEW)
    succeed(warehouse, run, n=1, mlflow_version="7")
    with warehouse, warehouse.cursor() as cur:  # the run re-run with another model: version 8 replaces 7
        record_version(cur, run_id=run.run_id, model_name=MODEL, year=2026, month=3, n=2, calendar_version="2026.03.2",
                       mlflow_version="8", mlflow_run_id="abc", config_fingerprint=NEW)
        assert retire_versions(cur, MODEL, run.run_id, keep="8", replaced_by="2026.03.2") == []  # done already
    refresh_views(warehouse)
    with warehouse, warehouse.cursor() as cur:
        cur.execute("SELECT mlflow_version, retired_at IS NOT NULL, replaced_by FROM model_versions ORDER BY n")
        assert cur.fetchall() == [("7", True, "2026.03.2"), ("8", False, None)]
        cur.execute("SELECT calendar_version FROM dashboard_models"
                    " UNION ALL SELECT calendar_version FROM dashboard_runs")
        assert cur.fetchall() == [("2026.03.2",), ("2026.03.2",)]


def test_refresh_and_render_wait_for_the_dashboard_lock(warehouse: Connection, connect: Connect,
                                                        tmp_path: Path, monkeypatch: Any) -> None:
    # the race: run A refreshed, run B committed and refreshed and rendered, then A rendered last from
    # views of before B; under the lock A's refresh and render come as one, before or after B's
    succeed(warehouse, month_run(3, NEW))
    refresh_views(warehouse)
    holder = connect()
    page = tmp_path / "index.html"
    finished: list[float] = []
    monkeypatch.setattr(pipeline, "current_fingerprint", lambda config_dir: NEW)

    def refresher() -> None:
        conn = connect()
        pipeline.refresh_dashboard(conn, page, tmp_path)
        finished.append(time.monotonic())

    with dashboard_lock(holder):
        thread = threading.Thread(target=refresher)
        thread.start()
        time.sleep(1.5)
        assert not finished and not page.exists(), "refresh and render ran while another run held the lock"
        succeed(warehouse, month_run(4, NEW))  # a run that commits meanwhile is on the page written next
        released = time.monotonic()
    thread.join(timeout=60)
    assert finished and finished[0] >= released
    assert "2026.04.1" in page.read_text() and "2026.03.1" in page.read_text()
    # the lock is the session's and was given back: it can be taken again at once
    with dashboard_lock(connect()):
        pass
