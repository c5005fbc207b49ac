"""Real federated statistics jobs on the session's test stack, and the pooled data they are checked against.

A job is built and exported as ``NVFlareJobOperator`` does it (``fl_tasks.jobs.export_job`` with the
merged, validated ``stats`` config), then submitted, followed until it ends and its result downloaded
through the job lifecycle of ``flareflow.hooks.nvflare``. Each scenario runs once per session (shared
by ``tests/stats`` and ``tests/privacy``). Pooling the sites' data happens only here, in tests, as the reference.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg2
from postgres_helpers import temporary_database
from psycopg2 import sql

import fl_tasks.stats.job as stats_job
from fl_tasks.contract import Contract
from fl_tasks.data import SITE_DATA_DIR, FeatureSpec, encode_features, load_site_data
from fl_tasks.jobs import export_job
from fl_tasks.stats.privacy import indicator_groups
from fl_tasks.stats.result import normalize_result
from flareflow.config import load_pipeline_config
from flareflow.hooks.nvflare import (
    COMPLETED,
    NVFlareJobTimeout,
    abort_job,
    download_result,
    open_session,
    submit_job,
    wait_for_jobs,
    wait_for_sites,
)
from flareflow.local.poc import ADMIN_USER
from flareflow.local.stack import Stack
from flareflow.warehouse import loaders
from flareflow.warehouse.schema import migrate

#: the DAG's data interval end for October 2026, as the end-to-end test uses
UNTIL = "2026-11-01"

#: the settings each scenario overrides (validated like a trigger's ``config_overrides``)
SCENARIOS: dict[str, dict[str, Any]] = {
    # noise off, and privacy rules that withhold only what has no records: the aggregation itself
    "exact": {"privacy": {"min_noise_level": 0, "max_noise_level": 0, "min_count": 1, "max_bins_percent": 100},
              "stats": {"precision": 12}},
    # the configured privacy rules, as the monthly DAG runs them
    "production": {},
    # the rules with min count 1, so that every histogram is released and its noisy range can be checked
    "noisy_ranges": {"privacy": {"min_count": 1, "max_bins_percent": 100}},
    # one month of admissions: small sites fall below the minimum count
    "one_month": {"data": {"window_months": 1}},
}


@dataclass(frozen=True)
class StatsRun:
    """One completed stats job: its config, its downloaded result, and where things are."""

    scenario: str
    config: dict[str, Any]
    job_id: str
    download: Path
    raw: dict[str, Any]
    seconds: float

    @property
    def features(self) -> list[str]:
        return FeatureSpec.from_dict(self.config["data"]["features"]).columns

    @property
    def sites(self) -> list[str]:
        return list(self.config["federation"]["sites"])

    @property
    def min_count(self) -> int:
        return int(self.config["privacy"]["min_count"])

    @property
    def indicators(self) -> list[str]:
        return [f for members in indicator_groups(self.config["data"]["features"]).values() for f in members]

    @property
    def result(self) -> dict[str, Any]:
        """The normalized result, as the pipeline reads it (with the indicator features' categories)."""
        return normalize_result(self.raw, self.features, self.indicators)


_RUNS: dict[tuple[str, str], StatsRun] = {}


def stats_config(stack: Stack, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return the merged, validated ``stats`` job config with ``overrides`` applied."""
    return load_pipeline_config(stack.config_dir, overrides).job("stats").model_dump(mode="json")


def run_scenario(stack: Stack, scenario: str, *, timeout_s: float = 900) -> StatsRun:
    """Run the scenario's stats job on the stack once per session; return its run."""
    key = (str(stack.home), scenario)
    if key in _RUNS:
        return _RUNS[key]
    config = stats_config(stack, SCENARIOS[scenario])
    sites = config["federation"]["sites"]
    work = stack.home / "test-stats" / scenario
    started = time.monotonic()
    folder = export_job(stats_job, work / "job", f"stats_{scenario}", sites, {"config": config, "until": UNTIL})
    session = open_session(str(stack.poc().admin_kit), ADMIN_USER, attempts=5)
    try:
        wait_for_sites(session, sites, timeout_s=120)
        job_id = submit_job(session, folder)
        try:
            status = wait_for_jobs(session, [job_id], timeout_s=timeout_s, poll_s=1)[job_id]
        except NVFlareJobTimeout:
            abort_job(session, job_id)
            raise
        assert status == COMPLETED, f"stats job {job_id} ({scenario}) ended {status}"
        download = download_result(session, job_id, work / "result")
    finally:
        session.close()
    raw = json.loads((download / "workspace" / stats_job.RESULT_FILE).read_text())
    _RUNS[key] = StatsRun(scenario, config, job_id, download, raw, time.monotonic() - started)
    return _RUNS[key]


def completed_runs(stack: Stack) -> list[StatsRun]:
    """Return the stats runs this session completed on ``stack``."""
    return [run for (home, _), run in _RUNS.items() if home == str(stack.home)]


# -- the pooled reference ----------------------------------------------------------------------------
def site_data_file(stack: Stack, site: str, config: Mapping[str, Any]) -> Path:
    return stack.poc().site_workspace(site) / SITE_DATA_DIR / config["data"]["file_name"]


def site_records(stack: Stack, site: str, config: Mapping[str, Any]) -> pd.DataFrame:
    """Return a site's raw records in the run's window, read from its own data file."""
    return load_site_data(site_data_file(stack, site, config), Contract.from_config(config["data"]),
                          until=date.fromisoformat(UNTIL))


def site_features(stack: Stack, config: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """Return each site's encoded features in the run's window (missing values stay NaN)."""
    spec = FeatureSpec.from_dict(config["data"]["features"])
    return {site: encode_features(site_records(stack, site, config), spec)
            for site in config["federation"]["sites"]}


def values(frames: Mapping[str, pd.DataFrame], feature: str, sites: Sequence[str]) -> np.ndarray:
    """Return the non-missing values of ``feature`` at ``sites``, pooled."""
    parts = [frames[site][feature].to_numpy(dtype=float) for site in sites]
    pooled = np.concatenate(parts) if parts else np.array([])
    return pooled[~np.isnan(pooled)]


def released(result: Mapping[str, Any], statistic: str, feature: str) -> list[str]:
    """Return the sites (not ``global``) whose ``statistic`` of ``feature`` the result holds."""
    return sorted(s for s in result["statistics"].get(statistic, {}).get(feature, {}) if s != "global")


# -- the warehouse -----------------------------------------------------------------------------------
def warehouse_rows(stack: Stack, run: StatsRun) -> dict[str, list[tuple]]:
    """Load a run's result into a fresh, migrated warehouse on the stack's PostgreSQL; return its rows.

    :returns: ``feature_stats`` rows ``(site, feature, statistic, value, withheld)``,
        ``feature_histograms`` rows ``(site, feature, bin, low, high, count)``, and ``tables``: every
        table's column names and rows
    """
    info = loaders.RunInfo(run_id=f"test_{run.scenario}", dag_id="federated_retraining",
                           data_interval_start=pd.Timestamp("2026-10-01", tz="UTC").to_pydatetime(),
                           data_interval_end=pd.Timestamp(UNTIL, tz="UTC").to_pydatetime(),
                           config_fingerprint="0" * 64, sites=run.sites)
    with temporary_database(stack.database().base_url) as url:
        conn = psycopg2.connect(url)
        try:
            migrate(conn)
            loaders.load_stats(conn, info, run.result)
            with conn.cursor() as cur:
                cur.execute("SELECT site, feature, statistic, value, withheld FROM feature_stats")
                stats = cur.fetchall()
                cur.execute("SELECT site, feature, bin, low, high, count FROM feature_histograms ORDER BY bin")
                histograms = cur.fetchall()
            tables = warehouse_tables(conn)
        finally:
            conn.close()
    return {"feature_stats": stats, "feature_histograms": histograms, "tables": tables}


def warehouse_tables(conn: Any) -> dict[str, tuple[list[str], list[tuple]]]:
    """Return every table of a warehouse database: its column names and rows."""
    with conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
                    " AND table_type = 'BASE TABLE' ORDER BY table_name")
        tables = {}
        for (table,) in cur.fetchall():
            cur.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))
            tables[table] = ([column.name for column in cur.description], cur.fetchall())
    return tables


# -- the release rules, restated from the data (fl_tasks.stats.privacy is what the sites run) ---------
def expected_withheld(frames: Mapping[str, pd.DataFrame], config: Mapping[str, Any]) -> set[tuple[str, str]]:
    """Return the (site, feature) pairs the minimum count and category rules must withhold entirely."""
    k = config["privacy"]["min_count"]
    groups = indicator_groups(config["data"]["features"])
    withheld = set()
    for site, frame in frames.items():
        counts = frame.notna().sum()
        withheld |= {(site, feature) for feature in frame.columns if counts[feature] < k}
        for members in groups.values():
            positives = frame[members].sum()
            if any(positives[f] < k or counts[f] - positives[f] < k for f in members):
                withheld |= {(site, feature) for feature in members}
    return withheld
