"""A site with fewer than ``privacy.min_count`` records of a feature contributes nothing for it, end to end.

The ``one_month`` scenario (``data.window_months: 1``, October 2026) leaves Hungary and Switzerland with a
handful of records: a real job runs, its result is loaded into a fresh warehouse with
``loaders.load_stats``, and every statistic of such a site and feature is a withheld row, while the
global statistics cover exactly the sites that released them.
"""

from __future__ import annotations

import pytest
from stats_jobs import StatsRun, expected_withheld, released, site_features, values, warehouse_rows

from fl_tasks.stats.result import result_sites
from flareflow.local.stack import Stack
from flareflow.warehouse.loaders import STATISTICS

pytestmark = pytest.mark.federation


@pytest.fixture(scope="module")
def frames(stack: Stack, one_month_run: StatsRun) -> dict:
    return site_features(stack, one_month_run.config)


@pytest.fixture(scope="module")
def withheld(one_month_run: StatsRun, frames: dict) -> set[tuple[str, str]]:
    return expected_withheld(frames, one_month_run.config)


def test_the_window_leaves_sites_with_some_but_too_few_records(one_month_run: StatsRun, frames: dict) -> None:
    k = one_month_run.min_count
    few = {(site, f) for site, frame in frames.items() for f, n in frame.notna().sum().items() if 0 < n < k}
    assert {"hungary", "switzerland"} <= {site for site, _ in few}, few
    assert any(frame.notna().sum().min() >= k for frame in frames.values()), "no site above the minimum"


def test_a_site_below_the_minimum_is_absent_from_every_statistic_of_the_feature(
    one_month_run: StatsRun, withheld: set[tuple[str, str]]
) -> None:
    result = one_month_run.result
    assert withheld
    for feature in one_month_run.features:
        expected = [s for s in one_month_run.sites if (s, feature) not in withheld]
        for statistic in STATISTICS:
            assert released(result, statistic, feature) == expected, (feature, statistic)
        assert set(result["histograms"].get(feature, {})) - {"global"} <= set(expected), feature
    # every site still took part: the run does not fail for a missing site
    assert result_sites(one_month_run.raw) == set(one_month_run.sites)


def test_global_statistics_cover_exactly_the_releasing_sites(one_month_run: StatsRun, frames: dict) -> None:
    result, tolerance = one_month_run.result, 10.0 ** -one_month_run.config["stats"]["precision"]
    for feature in one_month_run.features:
        sites = released(result, "count", feature)
        if not sites:
            assert "global" not in result["statistics"]["count"].get(feature, {}), feature
            continue
        pooled = values(frames, feature, sites)
        assert result["statistics"]["count"][feature]["global"] == pooled.size, feature
        assert result["statistics"]["mean"][feature]["global"] == pytest.approx(pooled.mean(), abs=tolerance)


def test_the_warehouse_records_the_withheld_statistics(
    stack: Stack, one_month_run: StatsRun, withheld: set[tuple[str, str]]
) -> None:
    rows = warehouse_rows(stack, one_month_run)
    cells = {(site, feature, statistic): (value, flag)
             for site, feature, statistic, value, flag in rows["feature_stats"]}
    for site in one_month_run.sites:
        for feature in one_month_run.features:
            for statistic in STATISTICS:
                value, flag = cells[(site, feature, statistic)]
                if (site, feature) in withheld:
                    assert (value, flag) == (None, True), (site, feature, statistic)
                else:
                    assert flag is False, (site, feature, statistic)
    assert not {(site, feature) for site, feature, *_ in rows["feature_histograms"]} & withheld
    withheld_rows = sum(1 for value, flag in cells.values() if flag)
    assert withheld_rows >= len(withheld) * len(STATISTICS)
