"""The warehouse's migrations, loaders and views against a real PostgreSQL server."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg2
import psycopg2.errors
import pytest
from psycopg2.extensions import TRANSACTION_STATUS_IDLE
from psycopg2.extensions import connection as Connection
from sample_results import (
    BINS,
    CHECK_COLUMNS,
    FEATURES,
    MODEL,
    ROUNDS,
    SCOPES,
    SHAP_FEATURES,
    SITES,
    STATISTICS,
    data_check_result,
    make_run,
    shap_result,
    stats_result,
    training_result,
)

from flareflow.warehouse import schema
from flareflow.warehouse.loaders import (
    DASHBOARD_VIEWS,
    RunInfo,
    discard_run,
    load_data_quality,
    load_shap,
    load_stats,
    load_training,
    mark_run_succeeded,
    refresh_views,
    row_counts,
)
from flareflow.warehouse.schema import migrate

Connect = Callable[[], Connection]
#: what one realistic run writes
STAT_ROWS = len(STATISTICS) * len(FEATURES) * len(SCOPES)  # every site, withheld or not: 100
WITHHELD_ROWS = len(STATISTICS)  # switzerland's chol
HISTOGRAM_ROWS = (len(FEATURES) * len(SCOPES) - 1) * BINS  # no switzerland chol histogram: 240
TRAINING_ROWS = (ROUNDS + 1) * len(SCOPES) * 3 + len(SCOPES) * 3  # validation + test: 105
SHAP_ROWS = len(SHAP_FEATURES) * len(SCOPES)  # 75
QUALITY_COLUMN_ROWS = len(CHECK_COLUMNS) * len(SITES)  # 52
TABLES = ("runs", "data_quality_sites", "data_quality_columns", "feature_stats", "feature_histograms",
          "training_metrics", "shap_importance", "model_versions")


def load_all(conn: Connection, run: RunInfo, *, shift: float = 0.0, succeed: bool = True) -> None:
    """Load a whole run as the DAG does, record a model version for it, and maybe mark it successful."""
    load_data_quality(conn, run, data_check_result(shift / 100))
    load_stats(conn, run, stats_result(shift))
    load_training(conn, run, training_result(shift=shift / 100))
    load_shap(conn, run, shap_result(shift / 100))
    start = run.data_interval_start
    with conn, conn.cursor() as cur:
        cur.execute("SELECT coalesce(max(n), 0) + 1 FROM calendar_numbers WHERE year = %s AND month = %s",
                    (start.year, start.month))
        n = cur.fetchone()[0]
        cur.execute("INSERT INTO calendar_numbers VALUES (%s, %s, %s, %s, %s)",
                    (MODEL, start.year, start.month, n, run.run_id))
        cur.execute(
            "INSERT INTO model_versions (run_id, registered_model, year, month, n, calendar_version,"
            " mlflow_version, mlflow_run_id, config_fingerprint) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            # MLflow numbers a registered model's versions once across months: here YYYYMM0N
            (run.run_id, MODEL, start.year, start.month, n, f"{start:%Y.%m}.{n}", f"{start:%Y%m}{n:02d}", "abc123",
             run.config_fingerprint),
        )
    if succeed:
        mark_run_succeeded(conn, run.run_id)


def query(conn: Connection, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with conn, conn.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchall()


def stat(conn: Connection, run: RunInfo, site: str, feature: str, statistic: str) -> tuple[Any, ...]:
    """Return (value, withheld) of one statistic."""
    rows = query(conn, "SELECT value, withheld FROM feature_stats WHERE run_id = %s AND site = %s"
                       " AND feature = %s AND statistic = %s", (run.run_id, site, feature, statistic))
    assert len(rows) == 1, rows
    return rows[0]


def full_counts(model_versions: int = 1) -> dict[str, int]:
    return {"runs": 1, "data_quality_sites": len(SITES), "data_quality_columns": QUALITY_COLUMN_ROWS,
            "feature_stats": STAT_ROWS, "feature_histograms": HISTOGRAM_ROWS,
            "training_metrics": TRAINING_ROWS, "shap_importance": SHAP_ROWS, "model_versions": model_versions}


# --- migrations ---------------------------------------------------------------------------------------


def test_migrate_is_idempotent(connect: Connect) -> None:
    conn = connect()
    versions = [version for version, _, _ in schema.migrations()]
    assert versions == sorted(versions) and versions[:2] == [1, 2]
    assert migrate(conn) == versions
    assert migrate(conn) == []
    assert query(conn, "SELECT version FROM schema_migrations ORDER BY version") == [(v,) for v in versions]
    tables = {row[0] for row in query(conn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert set(TABLES) | {"calendar_numbers", "schema_migrations"} <= tables
    views = {row[0] for row in query(conn, "SELECT matviewname FROM pg_matviews")}
    assert views == set(DASHBOARD_VIEWS)


def test_concurrent_migrators_apply_each_migration_once(connect: Connect) -> None:
    holder, observer = connect(), connect()
    holder.autocommit = observer.autocommit = True
    with holder.cursor() as cur:  # hold the migrators' lock until both are waiting on it
        cur.execute("SELECT pg_advisory_lock(%s)", (schema._LOCK_KEY,))
    results: list[list[int] | BaseException] = []

    def migrator() -> None:
        try:
            results.append(migrate(connect()))
        except BaseException as error:  # reported below, not lost in the thread
            results.append(error)

    threads = [threading.Thread(target=migrator) for _ in range(2)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    with observer.cursor() as cur:
        while True:
            cur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND"
                        " database = (SELECT oid FROM pg_database WHERE datname = current_database())")
            if cur.fetchone()[0] == 2:
                break
            assert time.monotonic() < deadline, "the migrators never waited on the lock"
            time.sleep(0.02)
    with holder.cursor() as cur:
        cur.execute("SELECT pg_advisory_unlock(%s)", (schema._LOCK_KEY,))
        assert cur.fetchone() == (True,)
    for thread in threads:
        thread.join(timeout=60)
    versions = [version for version, _, _ in schema.migrations()]
    assert sorted(results, key=len) == [[], versions]  # also: no exception
    assert query(observer, "SELECT count(*) FROM schema_migrations") == [(len(versions),)]


# --- loaders ------------------------------------------------------------------------------------------


def test_loaders_write_the_expected_rows(warehouse: Connection) -> None:
    run = make_run(2025, 3)
    assert load_data_quality(warehouse, run, data_check_result()) == len(SITES) + QUALITY_COLUMN_ROWS
    assert load_stats(warehouse, run, stats_result()) == STAT_ROWS + HISTOGRAM_ROWS
    assert load_training(warehouse, run, training_result()) == TRAINING_ROWS
    assert load_shap(warehouse, run, shap_result()) == SHAP_ROWS
    assert row_counts(warehouse, run.run_id) == full_counts(model_versions=0)
    assert query(warehouse, "SELECT dag_id, sites, status, finished_at, config_fingerprint FROM runs") == [
        ("federated_retraining", list(SITES), "running", None, run.config_fingerprint)]
    assert stat(warehouse, run, "cleveland", "age", "mean") == (54.35, False)
    assert stat(warehouse, run, "hungary", "chol", "count") == (270.0, False)
    assert stat(warehouse, run, "global", "age", "count") == (920.0, False)
    assert query(warehouse, "SELECT site, feature, statistic FROM feature_stats WHERE withheld"
                            " ORDER BY statistic") == [("switzerland", "chol", s) for s in sorted(STATISTICS)]
    assert query(warehouse, "SELECT count(*) FROM feature_stats WHERE value IS NULL") == [(WITHHELD_ROWS,)]
    assert query(warehouse, "SELECT count(*), sum(count) FROM feature_histograms"
                            " WHERE site = 'cleveland' AND feature = 'age'") == [(BINS, 300)]
    # the global histograms name the sites they cover; a site's own histogram covers just itself (NULL)
    assert query(warehouse, "SELECT DISTINCT feature, covers FROM feature_histograms WHERE site = 'global'"
                            " AND feature IN ('age', 'chol') ORDER BY feature") == [
        ("age", list(SITES)), ("chol", ["cleveland", "hungary", "va-long-beach"])]
    assert query(warehouse, "SELECT count(*) FROM feature_histograms WHERE site <> 'global'"
                            " AND covers IS NOT NULL") == [(0,)]
    assert query(warehouse, "SELECT value FROM training_metrics WHERE site = 'global' AND split = 'test'"
                            " AND metric = 'auc' AND round = %s", (ROUNDS,)) == [(pytest.approx(0.81),)]
    assert query(warehouse, "SELECT count(DISTINCT round) FROM training_metrics WHERE split = 'validation'") \
        == [(ROUNDS + 1,)]
    assert query(warehouse, "SELECT mean_abs_shap, n_samples FROM shap_importance"
                            " WHERE site = 'global' AND feature = 'age'") == [(pytest.approx(0.34), 160)]


def test_shap_rows_hold_the_standard_error_and_the_rows_sampled_of_the_rows_held(warehouse: Connection) -> None:
    run = make_run(2025, 3)
    load_shap(warehouse, run, shap_result())
    assert query(warehouse, "SELECT site, mean_abs_shap, standard_error, n_samples, n_rows FROM shap_importance"
                            " WHERE feature = 'age' ORDER BY site") == [
        ("cleveland", pytest.approx(0.3), pytest.approx(0.01), 40, 120),
        ("global", pytest.approx(0.34), pytest.approx(0.005), 160, 240),
        ("hungary", pytest.approx(0.31), 0.0, 40, 40),
        ("switzerland", pytest.approx(0.32), 0.0, 40, 40),
        ("va-long-beach", pytest.approx(0.33), 0.0, 40, 40)]
    # a result from before the error was reported: the importances load, the error and row count are NULL
    old = shap_result()
    for scope in (*old["sites"].values(), old["global"]):
        del scope["se"], scope["rows"]
    assert load_shap(warehouse, run, old) == SHAP_ROWS
    assert query(warehouse, "SELECT count(*) FROM shap_importance WHERE standard_error IS NULL AND n_rows IS NULL"
                            " AND mean_abs_shap > 0") == [(SHAP_ROWS,)]


def test_data_quality_rows_hold_each_sites_report(warehouse: Connection) -> None:
    run = make_run(2025, 3)
    result = data_check_result()
    result["sites"]["hungary"]["columns"]["age"]["missing_share"] = float("nan")  # not a number: NULL
    result["sites"]["va-long-beach"]["rows_in_window"] = 0
    load_data_quality(warehouse, run, result)
    assert query(warehouse, "SELECT site, file_status, rows_in_file, rows_in_window, label_classes, label_missing,"
                            " duplicated_ids, missing_columns, suspected_delimiter FROM data_quality_sites"
                            " ORDER BY site") == [
        ("cleveland", "found", 304, 304, [0, 1], 0, 0, [], None),
        ("hungary", "found", 303, 293, [0, 1], 1, 0, [], None),
        ("switzerland", "found", 143, 123, [0, 1], 2, 0, [], None),
        ("va-long-beach", "found", 230, 0, [0, 1], 3, 0, [], None)]
    columns = query(warehouse, "SELECT column_name, kind FROM data_quality_columns WHERE site = 'cleveland'"
                               " ORDER BY position")
    assert columns == list(CHECK_COLUMNS.items())  # in the contract's order
    assert query(warehouse, "SELECT site, missing_share FROM data_quality_columns WHERE column_name = 'chol'"
                            " ORDER BY site") == [("cleveland", 0.0), ("hungary", pytest.approx(23 / 293, abs=1e-6)),
                                                  ("switzerland", 1.0), ("va-long-beach", 0.28)]
    assert query(warehouse, "SELECT missing_share FROM data_quality_columns WHERE site = 'hungary'"
                            " AND column_name = 'age'") == [(None,)]
    # a reload replaces the run's rows, the view shows them once the run succeeded
    load_data_quality(warehouse, run, data_check_result(shift=0.5))
    assert row_counts(warehouse, run.run_id)["data_quality_columns"] == QUALITY_COLUMN_ROWS
    mark_run_succeeded(warehouse, run.run_id)
    refresh_views(warehouse)
    assert query(warehouse, "SELECT count(*), min(missing_share) FROM dashboard_data_quality") == [
        (QUALITY_COLUMN_ROWS, 0.5)]
    assert query(warehouse, "SELECT rows_in_window FROM dashboard_data_quality WHERE site = 'switzerland'"
                            " AND column_name = 'chol'") == [(123,)]


def test_withheld_only_when_the_site_is_absent(warehouse: Connection) -> None:
    run = make_run(2025, 3)
    result = stats_result()
    statistics = result["statistics"]
    statistics["stddev"]["oldpeak"]["switzerland"] = float("nan")  # computed, undefined
    statistics["stddev"]["age"]["hungary"] = None
    statistics["mean"]["thalch"]["cleveland"] = float("inf")
    del statistics["sum"]["trestbps"]["hungary"]  # the privacy filter removed it
    del statistics["count"]["age"]  # the whole feature's counts removed: every site withheld
    load_stats(warehouse, run, result)
    assert stat(warehouse, run, "switzerland", "oldpeak", "stddev") == (None, False)
    assert stat(warehouse, run, "hungary", "age", "stddev") == (None, False)
    assert stat(warehouse, run, "cleveland", "thalch", "mean") == (None, False)
    assert stat(warehouse, run, "hungary", "trestbps", "sum") == (None, True)
    assert stat(warehouse, run, "switzerland", "chol", "mean") == (None, True)
    for scope in SCOPES:
        assert stat(warehouse, run, scope, "age", "count") == (None, True)
    assert stat(warehouse, run, "hungary", "trestbps", "mean") == (132.58, False)
    assert query(warehouse, "SELECT count(*) FROM feature_stats WHERE withheld") == [(4 + 1 + len(SCOPES),)]
    assert query(warehouse, "SELECT count(*) FROM feature_stats") == [(STAT_ROWS,)]


def test_reloading_a_run_replaces_its_rows(warehouse: Connection) -> None:
    run, other = make_run(2025, 3), make_run(2025, 2)
    load_all(warehouse, other)
    load_all(warehouse, run)
    before = stat(warehouse, run, "cleveland", "age", "mean")
    load_stats(warehouse, run, stats_result(shift=1.5))
    load_training(warehouse, run, training_result(shift=0.01))
    load_shap(warehouse, run, shap_result(0.5))
    assert row_counts(warehouse, run.run_id) == full_counts()
    assert before == (54.35, False)
    assert stat(warehouse, run, "cleveland", "age", "mean") == (pytest.approx(55.85), False)
    assert query(warehouse, "SELECT value FROM training_metrics WHERE run_id = %s AND site = 'global'"
                            " AND split = 'test' AND metric = 'auc'", (run.run_id,)) == [(pytest.approx(0.82),)]
    assert query(warehouse, "SELECT mean_abs_shap FROM shap_importance WHERE run_id = %s"
                            " AND site = 'global' AND feature = 'age'", (run.run_id,)) == [(pytest.approx(0.84),)]
    # reloading puts the run back to running: it is hidden until it succeeds again
    assert query(warehouse, "SELECT status, finished_at FROM runs WHERE run_id = %s", (run.run_id,)) == [
        ("running", None)]
    # rows the new result no longer has are gone (replace, not upsert)
    assert load_training(warehouse, run, training_result(rounds=2)) == 3 * len(SCOPES) * 3 + len(SCOPES) * 3
    assert row_counts(warehouse, run.run_id)["training_metrics"] == 60
    # the other run is untouched
    assert row_counts(warehouse, other.run_id) == full_counts()
    assert stat(warehouse, other, "cleveland", "age", "mean") == (54.35, False)


def test_failing_loader_keeps_the_earlier_rows(warehouse: Connection) -> None:
    run = make_run(2025, 3)
    load_all(warehouse, run)
    finished = query(warehouse, "SELECT finished_at FROM runs")[0][0]
    # feature_stats is replaced first; then a histogram count overflows bigint inside the transaction
    bad_stats = stats_result(shift=7.0)
    bad_stats["histograms"]["thalch"]["global"][3][2] = 10**20
    with pytest.raises(psycopg2.errors.NumericValueOutOfRange):
        load_stats(warehouse, run, bad_stats)
    # a round reported twice violates the primary key after the old rows were deleted
    bad_training = training_result(shift=0.05)
    bad_training["rounds"].append(copy.deepcopy(bad_training["rounds"][2]))
    with pytest.raises(psycopg2.errors.UniqueViolation):
        load_training(warehouse, run, bad_training)
    with pytest.raises(ValueError, match="zip"):  # one importance short: fails before writing anything
        load_shap(warehouse, run, {**shap_result(), "global": {"n_samples": 1, "mean_abs_shap": [0.1]}})
    assert warehouse.get_transaction_status() == TRANSACTION_STATUS_IDLE
    assert row_counts(warehouse, run.run_id) == full_counts()
    assert stat(warehouse, run, "cleveland", "age", "mean") == (54.35, False)
    assert query(warehouse, "SELECT value FROM training_metrics WHERE site = 'global' AND split = 'test'"
                            " AND metric = 'auc'") == [(pytest.approx(0.81),)]
    # the run is still the successful one it was, not reset to running
    assert query(warehouse, "SELECT status, finished_at FROM runs") == [("success", finished)]


def test_failing_first_load_leaves_no_rows(warehouse: Connection) -> None:
    run = make_run(2025, 3)
    bad_stats = stats_result()
    bad_stats["histograms"]["age"]["hungary"][0][2] = -(10**20)
    with pytest.raises(psycopg2.errors.NumericValueOutOfRange):
        load_stats(warehouse, run, bad_stats)
    assert row_counts(warehouse, run.run_id) == dict.fromkeys(TABLES, 0)


def test_discard_run_removes_every_row_but_keeps_calendar_numbers(warehouse: Connection) -> None:
    run, kept = make_run(2025, 3), make_run(2025, 3, "__manual")
    load_all(warehouse, run)
    load_all(warehouse, kept)
    assert row_counts(warehouse, run.run_id) == full_counts()
    assert discard_run(warehouse, run.run_id) == 1
    assert row_counts(warehouse, run.run_id) == dict.fromkeys(TABLES, 0)
    assert row_counts(warehouse, kept.run_id) == full_counts()
    assert query(warehouse, "SELECT n, run_id FROM calendar_numbers ORDER BY n") == [
        (1, run.run_id), (2, kept.run_id)]
    assert discard_run(warehouse, run.run_id) == 0


def test_mark_unknown_run_raises(warehouse: Connection) -> None:
    load_all(warehouse, make_run(2025, 3), succeed=False)
    with pytest.raises(LookupError, match="no-such-run"):
        mark_run_succeeded(warehouse, "no-such-run")
    assert query(warehouse, "SELECT run_id, status FROM runs") == [(make_run(2025, 3).run_id, "running")]


# --- views --------------------------------------------------------------------------------------------


def set_finished(conn: Connection, run: RunInfo, finished: datetime | None) -> None:
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE runs SET finished_at = %s WHERE run_id = %s", (finished, run.run_id))


def latest(conn: Connection) -> list[tuple[Any, ...]]:
    return query(conn, "SELECT data_month, run_id FROM latest_runs ORDER BY data_month")


def test_latest_runs_picks_the_newest_successful_run_per_month(warehouse: Connection) -> None:
    february = make_run(2025, 2)
    first, newest = make_run(2025, 3, "__b"), make_run(2025, 3, "__a")  # the newest sorts first by id
    running = make_run(2025, 3, "__c")
    load_all(warehouse, february)
    load_all(warehouse, first)
    load_all(warehouse, newest)
    noon = datetime(2025, 4, 2, 12, tzinfo=UTC)
    set_finished(warehouse, first, noon)
    set_finished(warehouse, newest, noon + timedelta(minutes=5))
    load_all(warehouse, running, succeed=False)  # loaded last, never succeeded
    load_all(warehouse, make_run(2025, 4), succeed=False)  # a month with no successful run
    assert latest(warehouse) == [(datetime(2025, 2, 1, tzinfo=UTC), february.run_id),
                                 (datetime(2025, 3, 1, tzinfo=UTC), newest.run_id)]
    set_finished(warehouse, first, noon + timedelta(minutes=10))
    assert latest(warehouse)[1][1] == first.run_id


def test_latest_runs_prefers_a_finished_run_over_a_null_finished_at(warehouse: Connection) -> None:
    finished, unknown = make_run(2025, 3, "__a"), make_run(2025, 3, "__b")
    load_all(warehouse, finished)
    load_all(warehouse, unknown)
    set_finished(warehouse, unknown, None)
    assert [row[1] for row in latest(warehouse)] == [finished.run_id]


def test_latest_runs_months_are_utc_whatever_the_session_time_zone(warehouse: Connection) -> None:
    february, march = make_run(2025, 2, day=15), make_run(2025, 3, hour=0)  # 2025-03-01T00:00Z
    load_all(warehouse, february)
    load_all(warehouse, march)
    with warehouse, warehouse.cursor() as cur:
        cur.execute("SET TimeZone = 'America/Los_Angeles'")  # March 1st 00:00Z is still February there
    refresh_views(warehouse)
    assert latest(warehouse) == [(datetime(2025, 2, 1, tzinfo=UTC), february.run_id),
                                 (datetime(2025, 3, 1, tzinfo=UTC), march.run_id)]
    assert query(warehouse, "SELECT data_month, run_id FROM dashboard_runs ORDER BY data_month") == \
        latest(warehouse)


def view_counts(conn: Connection) -> dict[str, int]:
    return {view: query(conn, f"SELECT count(*) FROM {view}")[0][0] for view in DASHBOARD_VIEWS}


def test_refresh_views_twice_and_after_new_runs(warehouse: Connection) -> None:
    assert view_counts(warehouse) == dict.fromkeys(DASHBOARD_VIEWS, 0)
    march = make_run(2025, 3)
    load_all(warehouse, march)
    one_run = {"dashboard_runs": 1, "dashboard_feature_stats": STAT_ROWS, "dashboard_histograms": HISTOGRAM_ROWS,
               "dashboard_training": TRAINING_ROWS, "dashboard_shap": SHAP_ROWS, "dashboard_models": 1,
               "dashboard_data_quality": QUALITY_COLUMN_ROWS}
    assert view_counts(warehouse) == dict.fromkeys(DASHBOARD_VIEWS, 0)  # not refreshed yet
    refresh_views(warehouse)
    assert view_counts(warehouse) == one_run
    refresh_views(warehouse)
    assert view_counts(warehouse) == one_run
    rerun = make_run(2025, 3, "__manual")
    load_all(warehouse, rerun, shift=2.0)
    load_all(warehouse, make_run(2025, 4), succeed=False)
    refresh_views(warehouse)
    assert view_counts(warehouse) == one_run
    assert query(warehouse, "SELECT run_id, sites, config_fingerprint, data_interval_start, data_interval_end"
                            " FROM dashboard_runs") == [
        (rerun.run_id, list(SITES), rerun.config_fingerprint, rerun.data_interval_start, rerun.data_interval_end)]
    assert query(warehouse, "SELECT value FROM dashboard_feature_stats WHERE site = 'cleveland'"
                            " AND feature = 'age' AND statistic = 'mean'") == [(pytest.approx(56.35),)]
    assert query(warehouse, "SELECT calendar_version FROM dashboard_models") == [("2025.03.2",)]


def test_refresh_views_populates_never_populated_views(warehouse: Connection) -> None:
    load_all(warehouse, make_run(2025, 3))
    with warehouse, warehouse.cursor() as cur:
        for view in DASHBOARD_VIEWS:
            cur.execute(f"REFRESH MATERIALIZED VIEW {view} WITH NO DATA")
    refresh_views(warehouse)
    assert view_counts(warehouse)["dashboard_feature_stats"] == STAT_ROWS
    assert query(warehouse, "SELECT count(*) FROM pg_matviews WHERE ispopulated") == [(len(DASHBOARD_VIEWS),)]


def test_refresh_views_does_not_lock_out_dashboard_readers(warehouse: Connection, connect: Connect) -> None:
    load_all(warehouse, make_run(2025, 3))
    refresh_views(warehouse)
    reader = connect()
    with reader.cursor() as cur:  # a dashboard read in progress: its transaction stays open
        for view in DASHBOARD_VIEWS:
            cur.execute(f"SELECT count(*) FROM {view}")
    with warehouse, warehouse.cursor() as cur:
        cur.execute("SET lock_timeout = '3s'")  # a plain REFRESH would wait for the reader, then fail
    load_all(warehouse, make_run(2025, 4))
    refresh_views(warehouse)
    reader.rollback()
    assert view_counts(warehouse)["dashboard_runs"] == 2


def test_views_show_each_runs_promotion_decision(warehouse: Connection) -> None:
    march, april, may = make_run(2025, 3), make_run(2025, 4), make_run(2025, 5)
    for run in (march, april, may):
        load_all(warehouse, run)
    reason = "validation AUC 0.812 < champion 2025.03.1's 0.850 - tolerance 0.010"
    with warehouse, warehouse.cursor() as cur:
        cur.execute("UPDATE model_versions SET role = 'champion', promotion_reason = 'first version: no champion yet',"
                    " validation_auc = 0.85, decided_at = now() WHERE run_id = %s", (march.run_id,))
        cur.execute("UPDATE model_versions SET role = 'challenger', promotion_reason = %s, validation_auc = 0.812,"
                    " previous_champion = '2025.03.1', decided_at = now() WHERE run_id = %s", (reason, april.run_id))
    refresh_views(warehouse)
    assert query(warehouse, "SELECT run_id, calendar_version, role, promotion_reason, validation_auc"
                            " FROM dashboard_runs ORDER BY data_month") == [
        (march.run_id, "2025.03.1", "champion", "first version: no champion yet", 0.85),
        (april.run_id, "2025.04.1", "challenger", reason, 0.812),
        (may.run_id, "2025.05.1", None, None, None),  # not decided (yet)
    ]
    assert query(warehouse, "SELECT calendar_version, role, previous_champion FROM dashboard_models"
                            " ORDER BY data_interval_start") == [
        ("2025.03.1", "champion", None), ("2025.04.1", "challenger", "2025.03.1"), ("2025.05.1", None, None)]


def test_a_role_is_champion_or_challenger(warehouse: Connection) -> None:
    run = make_run(2025, 3)
    load_all(warehouse, run)
    with pytest.raises(psycopg2.errors.CheckViolation), warehouse, warehouse.cursor() as cur:
        cur.execute("UPDATE model_versions SET role = 'winner' WHERE run_id = %s", (run.run_id,))


def test_a_run_without_a_model_version_is_shown_without_a_role(warehouse: Connection) -> None:
    run = make_run(2025, 3)
    load_stats(warehouse, run, stats_result())
    mark_run_succeeded(warehouse, run.run_id)
    refresh_views(warehouse)
    assert query(warehouse, "SELECT run_id, calendar_version, role FROM dashboard_runs") == [(run.run_id, None, None)]
