"""Read what the dashboard shows from the warehouse's ``dashboard_*`` materialized views.

Only the views are read, so the page shows the latest successful run of each data month as of the
last :func:`flareflow.warehouse.loaders.refresh_views`: the latest month's run (from ``dashboard_runs``)
and its rows, and the model versions of every month with their promotion decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from psycopg2.extensions import connection as Connection
from psycopg2.extras import RealDictCursor

from flareflow.warehouse.loaders import GLOBAL

Row = dict[str, Any]


@dataclass
class DashboardData:
    """What the dashboard shows: the latest run's rows, and the model history of every month.

    ``run_sites`` and ``config_fingerprint`` are the latest run's own record (``dashboard_runs``);
    ``current_fingerprint`` is the config's now (None: unknown), which each month's is compared with.
    """

    run_id: str | None = None
    data_month: datetime | None = None
    run_sites: list[str] = field(default_factory=list)
    config_fingerprint: str | None = None
    stats: list[Row] = field(default_factory=list)
    histograms: list[Row] = field(default_factory=list)
    training: list[Row] = field(default_factory=list)
    shap: list[Row] = field(default_factory=list)
    models: list[Row] = field(default_factory=list)
    quality: list[Row] = field(default_factory=list)
    current_fingerprint: str | None = None

    def is_stale(self, model: Row) -> bool:
        """Return whether a month's row was computed with a config other than the current one."""
        return self.current_fingerprint is not None and model["config_fingerprint"] != self.current_fingerprint

    @property
    def stale_months(self) -> list[datetime]:
        """Return the data months (their interval's start) computed with another config, oldest first."""
        return sorted(m["data_interval_start"] for m in self.models if self.is_stale(m))

    @property
    def latest_model(self) -> Row | None:
        """Return the model version registered by the latest run, if any."""
        return next((m for m in self.models if m["run_id"] == self.run_id), None)

    @property
    def sites(self) -> list[str]:
        """Return the hospital sites of the latest run and of its rows, sorted, then ``global``."""
        names = set(self.run_sites)
        for rows in (self.stats, self.histograms, self.training, self.shap, self.quality):
            names.update(row["site"] for row in rows)
        names.discard(GLOBAL)
        return [*sorted(names), GLOBAL]


def _fetch(cur: Any, query: str, params: Sequence[Any] = ()) -> list[Row]:
    """Run a query and return its rows as dicts."""
    cur.execute(query, params)
    return [dict(row) for row in cur.fetchall()]


def read_dashboard(conn: Connection, current_fingerprint: str | None = None) -> DashboardData:
    """Read the latest data month's run and rows, and the model history, from the dashboard views.

    :param conn: warehouse connection
    :param current_fingerprint: the current config's fingerprint (marks the months computed with another)
    """
    with conn, conn.cursor(cursor_factory=RealDictCursor) as cur:
        found = _fetch(cur, "SELECT run_id, data_month, sites, config_fingerprint FROM dashboard_runs"
                            " ORDER BY data_month DESC LIMIT 1")
        if not found:
            return DashboardData(current_fingerprint=current_fingerprint)
        run = found[0]
        by_run = (run["run_id"],)
        month = run["data_month"]
        return DashboardData(
            run_id=run["run_id"],
            data_month=month.astimezone(UTC) if month.tzinfo else month,
            run_sites=list(run["sites"]),
            config_fingerprint=run["config_fingerprint"],
            stats=_fetch(cur, "SELECT site, feature, statistic, value, withheld"
                              " FROM dashboard_feature_stats WHERE run_id = %s", by_run),
            histograms=_fetch(cur, "SELECT site, feature, bin, low, high, count, covers FROM dashboard_histograms"
                                   " WHERE run_id = %s ORDER BY feature, site, bin", by_run),
            training=_fetch(cur, "SELECT site, round, split, metric, value FROM dashboard_training"
                                 " WHERE run_id = %s ORDER BY site, round, metric", by_run),
            shap=_fetch(cur, "SELECT site, feature, mean_abs_shap, n_samples, standard_error, n_rows"
                             " FROM dashboard_shap WHERE run_id = %s", by_run),
            models=_fetch(cur, "SELECT * FROM dashboard_models"
                               " ORDER BY data_interval_start DESC, created_at DESC, run_id"),
            quality=_fetch(cur, "SELECT site, column_name, kind, unparseable, unknown, missing_share, file_status,"
                                " rows_in_file, rows_in_window, label_classes, label_missing, duplicated_ids"
                                " FROM dashboard_data_quality WHERE run_id = %s ORDER BY position, site", by_run),
            current_fingerprint=current_fingerprint,
        )


@dataclass(frozen=True)
class StaleMonth:
    """A data month whose latest successful run used a config other than the current one.

    :param month: ``YYYY-MM`` (a UTC month, as the warehouse groups runs)
    :param run_id: that run
    :param config_fingerprint: the config it ran with
    """

    month: str
    run_id: str
    config_fingerprint: str


def stale_months(conn: Connection, current_fingerprint: str) -> list[StaleMonth]:
    """Return the data months whose latest successful run used another config, oldest first.

    Read from ``latest_runs`` (not the materialized views), so a run that finished since the last
    refresh counts.

    :param conn: warehouse connection
    :param current_fingerprint: the current config's fingerprint
    """
    with conn, conn.cursor() as cur:
        cur.execute("SELECT to_char(data_month AT TIME ZONE 'UTC', 'YYYY-MM'), run_id, config_fingerprint"
                    " FROM latest_runs WHERE config_fingerprint <> %s ORDER BY data_month", (current_fingerprint,))
        return [StaleMonth(month, run_id, fingerprint) for month, run_id, fingerprint in cur.fetchall()]
