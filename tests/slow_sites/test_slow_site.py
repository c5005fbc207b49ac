"""A slow hospital (issue 3, requirement 3): the statistics and SHAP jobs aggregate every site, the slow one
included, and wait for it rather than for anything fixed.

One site is slowed down by this test only, never by flareflow's code (``benchmarks/slow_site.py``):
in the statistics job it holds each result for ``STATS_DELAY_S`` seconds (a site-local NVFlare result
filter, ``site_delay.py``, in its ``local/`` folder for that job only); in the SHAP job it explains a
resample of its own rows sized to take ``SHAP_EXTRA_S`` seconds longer than the largest other site.
Both jobs run on the session's test stack. The wall-time bound is the benchmark's to measure; here the
figures must show that the site really was slower, that the aggregation waited for it, and that the
site is left as it was.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from site_delay import DELAY_LOG

from benchmarks.slow_site import SLOW_SITE, STATS_DELAY_S, SlowSiteRun, measure, report
from fl_tasks.data import FeatureSpec
from fl_tasks.stats.client import DATASET
from fl_tasks.stats.result import GLOBAL_KEY
from flareflow.config import load_pipeline_config
from flareflow.local.stack import Stack

#: the requirement: the slow site is slower than every other site by at least this much, in each job
SLOWER_BY_S = 20.0
#: log timestamps have millisecond resolution
CLOCK_S = 0.01


def _site_files(stack: Stack, site: str) -> dict[str, str]:
    """Return every file under the site's ``local/`` folder with the hash of its content."""
    local = stack.poc().site_workspace(site) / "local"
    return {str(path.relative_to(local)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(local.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def site_before(stack: Stack) -> dict[str, str]:
    return _site_files(stack, SLOW_SITE)


@pytest.fixture(scope="module")
def slow_run(stack: Stack, site_before: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> SlowSiteRun:
    run = measure(stack, Path(tmp_path_factory.mktemp("slow_site")), site=SLOW_SITE)
    print(report(run))  # the figures, in the test's captured output
    return run


def _delay_lines(stack: Stack, site: str, job_id: str) -> list[str]:
    log_file = stack.poc().site_workspace(site) / job_id / "log.txt"
    return [line for line in log_file.read_text(errors="replace").splitlines() if DELAY_LOG in line]


def test_statistics_aggregate_every_site_the_slow_one_included(slow_run: SlowSiteRun, stack: Stack) -> None:
    stats = slow_run.stats
    assert stats.aggregated == sorted(stats.sites) == sorted(stack.sites())
    config = load_pipeline_config(stack.config_dir).job("stats").model_dump(mode="json")
    features = FeatureSpec.from_dict(config["data"]["features"]).columns
    # the features every site released (the privacy rules withhold some of a small site's)
    released = [f for f in features if set(slow_run.stats_raw.get(f, {}).get("count", {})) >= set(stats.sites)]
    assert released, "no feature released by every site"
    for feature in released:
        counts = slow_run.stats_raw[feature]["count"]
        assert counts[SLOW_SITE][DATASET] > 0
        assert counts[GLOBAL_KEY][DATASET] == sum(counts[site][DATASET] for site in stats.sites), feature


def test_statistics_slow_site_held_its_results_and_only_it(slow_run: SlowSiteRun, stack: Stack) -> None:
    stats = slow_run.stats
    held = _delay_lines(stack, SLOW_SITE, stats.job_id)
    assert len(held) == 2, f"one held result per statistics round expected, got {held}"
    for site in stats.sites:
        if site != SLOW_SITE:
            assert not _delay_lines(stack, site, stats.job_id), f"{site} was slowed down too"
    assert stats.slowest == SLOW_SITE
    assert stats.site_s[SLOW_SITE] >= 2 * STATS_DELAY_S
    assert stats.site_s[SLOW_SITE] - stats.others_max_s(SLOW_SITE) >= SLOWER_BY_S, stats.site_s
    # the server saw it too: its results arrived that much later than any other site's
    others = max(seconds for site, seconds in stats.server_s.items() if site != SLOW_SITE)
    assert stats.server_s[SLOW_SITE] - others >= SLOWER_BY_S, stats.server_s


def test_statistics_waited_for_the_slow_site(slow_run: SlowSiteRun) -> None:
    stats = slow_run.stats
    assert stats.wall_s >= stats.server_s[SLOW_SITE] - CLOCK_S >= stats.site_s[SLOW_SITE] - 2 * CLOCK_S


def test_shap_aggregates_every_site_weighted_by_its_rows(slow_run: SlowSiteRun, stack: Stack) -> None:
    result = slow_run.shap_result
    assert slow_run.shap.aggregated == sorted(stack.sites())
    assert slow_run.shap_rows > slow_run.own_rows
    assert result["sites"][SLOW_SITE]["n_samples"] == result["sites"][SLOW_SITE]["rows"] == slow_run.shap_rows
    sites = list(result["sites"])
    weights = np.array([result["sites"][s]["rows"] for s in sites], dtype=float)
    values = np.array([result["sites"][s]["mean_abs_shap"] for s in sites], dtype=float)
    assert result["global"]["n_samples"] == weights.sum()
    np.testing.assert_allclose(result["global"]["mean_abs_shap"], np.average(values, axis=0, weights=weights))


def test_shap_slow_site_computed_longer_than_every_other(slow_run: SlowSiteRun) -> None:
    compute = slow_run.shap.compute_s
    others = max(seconds for site, seconds in compute.items() if site != SLOW_SITE)
    assert compute[SLOW_SITE] - others >= SLOWER_BY_S, compute


def test_shap_waited_for_the_slowest_site(slow_run: SlowSiteRun) -> None:
    shap = slow_run.shap
    assert shap.slowest == SLOW_SITE, shap.site_s
    # the slow site's work lies within the server's wait: computing inside its own time on the task,
    # its own time inside the span the server saw, that span inside the aggregation's wait
    assert shap.site_s[SLOW_SITE] >= shap.compute_s[SLOW_SITE] - CLOCK_S
    assert shap.server_s[SLOW_SITE] >= shap.site_s[SLOW_SITE] - 2 * CLOCK_S
    assert shap.wall_s >= shap.server_s[SLOW_SITE] - CLOCK_S


def test_slow_site_is_left_as_it_was(slow_run: SlowSiteRun, stack: Stack, site_before: dict[str, str]) -> None:
    assert _site_files(stack, SLOW_SITE) == site_before
    assert not (stack.poc().site_workspace(SLOW_SITE) / "local" / "privacy.json").exists()
