"""Idempotent loaders: each writes one Airflow run's rows in one transaction, replacing earlier ones.

The inputs are the aggregate results NVFlare jobs return (see ``fl_tasks``); none holds a patient row.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg2.extensions import connection as Connection
from psycopg2.extras import execute_values

GLOBAL = "global"
#: the statistics flareflow asks NVFlare for, per feature and site
STATISTICS: tuple[str, ...] = ("count", "sum", "mean", "stddev")


@dataclass(frozen=True)
class RunInfo:
    """The Airflow run that owns a set of rows."""

    run_id: str
    dag_id: str
    data_interval_start: datetime
    data_interval_end: datetime
    config_fingerprint: str
    sites: Sequence[str]


def _replace(cur: Any, table: str, run_id: str, columns: Sequence[str], rows: Iterable[tuple]) -> int:
    cur.execute(f"DELETE FROM {table} WHERE run_id = %s", (run_id,))
    rows = [(run_id, *row) for row in rows]
    if rows:
        execute_values(cur, f"INSERT INTO {table} (run_id, {', '.join(columns)}) VALUES %s", rows)
    return len(rows)


def _upsert_run(cur: Any, run: RunInfo) -> None:
    cur.execute(
        """
        INSERT INTO runs (run_id, dag_id, data_interval_start, data_interval_end,
                          config_fingerprint, sites, status)
        VALUES (%s, %s, %s, %s, %s, %s, 'running')
        ON CONFLICT (run_id) DO UPDATE SET
            data_interval_start = EXCLUDED.data_interval_start,
            data_interval_end = EXCLUDED.data_interval_end,
            config_fingerprint = EXCLUDED.config_fingerprint,
            sites = EXCLUDED.sites, status = 'running', finished_at = NULL
        """,
        (run.run_id, run.dag_id, run.data_interval_start, run.data_interval_end,
         run.config_fingerprint, list(run.sites)),
    )


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def load_stats(conn: Connection, run: RunInfo, stats: Mapping[str, Any]) -> int:
    """Replace the run's feature statistics and histograms; return the rows written.

    Every statistic gets a row for each of the run's sites and ``global``. NVFlare's privacy filter
    withholds a site's statistic by leaving the site out of that feature's statistics, so a site absent
    there is written with ``value = NULL, withheld = true``. A site present with a value that is not a
    finite number (None, NaN, infinity: e.g. the stddev of a single record) is written with
    ``value = NULL, withheld = false``: computed, but undefined.

    :param conn: warehouse connection
    :param run: the owning Airflow run
    :param stats: ``{"features": [...], "statistics": {stat: {feature: {site: value}}},
        "histograms": {feature: {site: [[low, high, count], ...]}}, "histogram_sites": {feature: [site, ...]}}``;
        ``histogram_sites`` (the sites each global histogram covers) is stored as the global rows' ``covers``
    """
    sites = [*run.sites, GLOBAL]
    stat_rows = []
    for statistic in STATISTICS:
        per_feature = stats["statistics"].get(statistic, {})
        for feature in stats["features"]:
            values = per_feature.get(feature, {})
            for site in sites:
                if site in values:
                    stat_rows.append((site, feature, statistic, _finite(values[site]), False))
                else:
                    stat_rows.append((site, feature, statistic, None, True))
    covers = stats.get("histogram_sites", {})
    hist_rows = [
        (site, feature, index, float(low), float(high), int(count),
         list(covers[feature]) if site == GLOBAL and feature in covers else None)
        for feature, per_site in stats.get("histograms", {}).items()
        for site, bins in per_site.items()
        for index, (low, high, count) in enumerate(bins)
    ]
    with conn, conn.cursor() as cur:
        _upsert_run(cur, run)
        written = _replace(cur, "feature_stats", run.run_id,
                           ("site", "feature", "statistic", "value", "withheld"), stat_rows)
        written += _replace(cur, "feature_histograms", run.run_id,
                            ("site", "feature", "bin", "low", "high", "count", "covers"), hist_rows)
    return written


def load_data_quality(conn: Connection, run: RunInfo, result: Mapping[str, Any]) -> int:
    """Replace the run's data check reports, per site and per site and column; return the rows written.

    :param conn: warehouse connection
    :param run: the owning Airflow run
    :param result: the data check job's result, ``{"sites": {site: report}}`` (see ``fl_tasks.check.report``)
    """
    site_rows, column_rows = [], []
    for site, report in result["sites"].items():
        site_rows.append((site, report["file"], report["rows_in_file"], report["rows_in_window"],
                          [int(c) for c in report["label_classes"]], report["label_missing"],
                          report["duplicated_ids"], list(report["missing_columns"]), report["suspected_delimiter"]))
        column_rows += [(site, column, position, found["kind"], int(found["unparseable"]), int(found["unknown"]),
                         _finite(found["missing_share"]))
                        for position, (column, found) in enumerate(report["columns"].items())]
    with conn, conn.cursor() as cur:
        _upsert_run(cur, run)
        written = _replace(cur, "data_quality_sites", run.run_id,
                           ("site", "file_status", "rows_in_file", "rows_in_window", "label_classes",
                            "label_missing", "duplicated_ids", "missing_columns", "suspected_delimiter"), site_rows)
        written += _replace(cur, "data_quality_columns", run.run_id,
                            ("site", "column_name", "position", "kind", "unparseable", "unknown", "missing_share"),
                            column_rows)
    return written


def load_training(conn: Connection, run: RunInfo, result: Mapping[str, Any]) -> int:
    """Replace the run's per-site, per-round training metrics; return the rows written.

    :param result: the training job's result (``rounds`` with validation metrics per site and
        globally, ``test`` with final metrics per site and globally)
    """
    rows = []
    for entry in result["rounds"]:
        for site, metrics in entry["metrics"].items():
            rows += [(site, entry["round"], "validation", name, float(v)) for name, v in metrics.items()]
    final_round = int(result["final_round"])
    for site, metrics in result["test"].items():
        rows += [(site, final_round, "test", name, float(v)) for name, v in metrics.items()]
    with conn, conn.cursor() as cur:
        _upsert_run(cur, run)
        return _replace(cur, "training_metrics", run.run_id,
                        ("site", "round", "split", "metric", "value"), rows)


def load_shap(conn: Connection, run: RunInfo, result: Mapping[str, Any]) -> int:
    """Replace the run's SHAP importances per site and global; return the rows written.

    :param result: ``{"features": [...], "sites": {site: scope}, "global": scope}``, each scope
        ``{"n_samples": n, "rows": N, "mean_abs_shap": [...], "se": [...]}`` (``rows`` and ``se``, the
        standard error from sampling, are NULL when absent: results from before they were reported)
    """
    features = result["features"]
    scopes = {**result["sites"], GLOBAL: result["global"]}
    rows = []
    for site, scope in scopes.items():
        errors = scope.get("se") or [None] * len(features)
        total = int(scope["rows"]) if scope.get("rows") is not None else None
        rows += [(site, feature, float(value), int(scope["n_samples"]),
                  None if error is None else float(error), total)
                 for feature, value, error in zip(features, scope["mean_abs_shap"], errors, strict=True)]
    with conn, conn.cursor() as cur:
        _upsert_run(cur, run)
        return _replace(cur, "shap_importance", run.run_id,
                        ("site", "feature", "mean_abs_shap", "n_samples", "standard_error", "n_rows"), rows)


def mark_run_succeeded(conn: Connection, run_id: str) -> None:
    """Mark the run successful, which makes it visible in the dashboard views."""
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE runs SET status = 'success', finished_at = now() WHERE run_id = %s", (run_id,))
        if cur.rowcount != 1:
            raise LookupError(f"run {run_id!r} has no rows in the warehouse")


def discard_run(conn: Connection, run_id: str) -> int:
    """Delete every row of a run (it failed); return how many runs were deleted (0 or 1)."""
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM runs WHERE run_id = %s", (run_id,))
        return int(cur.rowcount)


def row_counts(conn: Connection, run_id: str) -> dict[str, int]:
    """Return how many rows each table holds for one run."""
    counts = {}
    with conn, conn.cursor() as cur:
        for table in ("runs", "data_quality_sites", "data_quality_columns", "feature_stats", "feature_histograms",
                      "training_metrics", "shap_importance", "model_versions"):
            cur.execute(f"SELECT count(*) FROM {table} WHERE run_id = %s", (run_id,))
            counts[table] = int(cur.fetchone()[0])
    return counts


#: the materialized views the dashboard reads, refreshed together by :func:`refresh_views`
DASHBOARD_VIEWS = ("dashboard_runs", "dashboard_feature_stats", "dashboard_histograms", "dashboard_training",
                   "dashboard_shap", "dashboard_models", "dashboard_data_quality")


def refresh_views(conn: Connection) -> None:
    """Refresh the materialized views the dashboard reads, in one transaction.

    A populated view is refreshed ``CONCURRENTLY``, so the dashboard can read it meanwhile; one never
    populated yet (created ``WITH NO DATA``, or emptied by ``REFRESH ... WITH NO DATA``) cannot be, and
    gets a plain first refresh.
    """
    with conn, conn.cursor() as cur:
        for view in DASHBOARD_VIEWS:
            cur.execute("SELECT relispopulated FROM pg_class WHERE oid = %s::regclass", (view,))
            concurrently = "CONCURRENTLY " if cur.fetchone()[0] else ""
            cur.execute(f"REFRESH MATERIALIZED VIEW {concurrently}{view}")


#: the advisory lock held while the dashboard views are refreshed and the page is rendered
_DASHBOARD_LOCK = "flareflow:dashboard"


@contextmanager
def dashboard_lock(conn: Connection) -> Iterator[None]:
    """Hold the dashboard's advisory lock (this session's) while the views are refreshed and the page written.

    Runs finishing together each refresh and render in turn, so the page written last was rendered
    from views refreshed after every run that committed before it: none is missing from it.

    :param conn: warehouse connection (the lock is its session's, across its transactions)
    """
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(hashtext(%s))", (_DASHBOARD_LOCK,))
    try:
        yield
    finally:
        if not conn.closed:
            conn.rollback()
            with conn, conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(hashtext(%s))", (_DASHBOARD_LOCK,))
