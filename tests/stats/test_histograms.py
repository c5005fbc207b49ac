"""No histogram bin holding fewer than ``privacy.min_count`` records is ever released or stored.

The rule (``fl_tasks.stats.privacy``): a site withholds its histogram of a feature when a non-empty bin
holds fewer than ``min_count`` records; its other statistics of the feature stay. Checked on the
``production`` scenario, in the downloaded result and in the warehouse, and shown to act: a site whose
feature passed every other rule (minimum count, categories, NVFlare's bin limit) withheld its histogram,
as its own job log says.
"""

from __future__ import annotations

import pytest
from stats_jobs import StatsRun, expected_withheld, released, site_features, warehouse_rows

from flareflow.local.stack import Stack


@pytest.fixture(scope="module")
def frames(stack: Stack, production_run: StatsRun) -> dict:
    return site_features(stack, production_run.config)


def test_no_released_bin_is_below_the_minimum(stack: Stack, production_run: StatsRun) -> None:
    k = production_run.min_count
    for feature, per_site in production_run.result["histograms"].items():
        for site, bins in per_site.items():
            assert all(b[2] == 0 or b[2] >= k for b in bins), (feature, site, [b[2] for b in bins])
    stored = warehouse_rows(stack, production_run)["feature_histograms"]
    assert stored, "no histogram stored at all"
    assert all(count == 0 or count >= k for *_, count in stored)


def test_the_rule_withholds_histograms_the_other_rules_let_through(
    stack: Stack, production_run: StatsRun, frames: dict
) -> None:
    config, result = production_run.config, production_run.result
    bins, percent = config["stats"]["histogram_bins"], config["privacy"]["max_bins_percent"]
    withheld = expected_withheld(frames, config)
    released_histograms = {(s, f) for f, per_site in result["histograms"].items() for s in per_site if s != "global"}
    by_this_rule = []
    for feature in production_run.features:
        for site in released(result, "count", feature):
            count = result["statistics"]["count"][feature][site]
            passes_bin_limit = bins < round(count * percent / 100)  # NVFlare's HistogramBinsCleanser
            if (site, feature) not in withheld and passes_bin_limit and (site, feature) not in released_histograms:
                by_this_rule.append((site, feature))
    assert by_this_rule, "the small-bin rule withheld nothing"
    for site, feature in by_this_rule:
        log = stack.poc().site_workspace(site) / production_run.job_id / "log.txt"
        assert f"histogram rule: withholding the histogram of {feature} for client {site}" in log.read_text(), (
            site, feature)
    print(f"\nhistograms released {len(released_histograms)}, withheld by the small-bin rule {len(by_this_rule)}: "
          f"{sorted(by_this_rule)}")
