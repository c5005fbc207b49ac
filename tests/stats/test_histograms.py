"""At the configured privacy rules, numeric features get histograms per site and global, and no bin
holding fewer than ``privacy.min_count`` records is ever released or stored.

The rules (``fl_tasks.stats.privacy``): a site bins a numeric feature on the shared edges the server
placed at the federation's quantiles (``fl_tasks.stats.bins``), merges neighbouring bins where one would
hold 1 to ``min_count - 1`` records, and withholds a histogram that still has such a bin. Checked on the
``production`` scenario (the demo's default config), in the downloaded result and in the warehouse:
every (site, numeric feature) with records is released, every global histogram covers those sites and
is exact, and the merging acted, as the sites' own job logs say.
"""

from __future__ import annotations

import numpy as np
import pytest
from stats_jobs import StatsRun, released, site_features, values, warehouse_rows

from fl_tasks.stats.client import numeric_features
from flareflow.local.stack import Stack

pytestmark = pytest.mark.federation


@pytest.fixture(scope="module")
def frames(stack: Stack, production_run: StatsRun) -> dict:
    return site_features(stack, production_run.config)


def edges_of(bins: list[list[float]]) -> list[float]:
    return [bins[0][0], *(b[1] for b in bins)]


def test_no_released_bin_is_below_the_minimum(stack: Stack, production_run: StatsRun) -> None:
    k = production_run.min_count
    for feature, per_site in production_run.result["histograms"].items():
        for site, bins in per_site.items():
            assert all(b[2] == 0 or b[2] >= k for b in bins), (feature, site, [b[2] for b in bins])
    stored = warehouse_rows(stack, production_run)["feature_histograms"]
    assert stored, "no histogram stored at all"
    assert all(count == 0 or count >= k for *_, count in stored)


def test_every_numeric_feature_is_released_by_every_site_with_records(
    production_run: StatsRun, frames: dict
) -> None:
    result, k = production_run.result, production_run.min_count
    numeric = numeric_features(production_run.config["data"]["features"])
    pairs = []
    for feature in numeric:
        with_records = [s for s in production_run.sites if frames[s][feature].notna().sum() >= k]
        assert released(result, "count", feature) == with_records, feature
        assert sorted(set(result["histograms"][feature]) - {"global"}) == with_records, feature
        assert result["histogram_sites"][feature] == with_records, feature
        pairs += [(site, feature) for site in with_records]
        global_bins = result["histograms"][feature]["global"]
        assert len([b for b in global_bins if b[2]]) >= 4, (feature, global_bins)  # readable, not 1-3 bins
    assert ("switzerland", "chol") not in pairs  # Switzerland records no cholesterol
    assert len(pairs) == len(numeric) * len(production_run.sites) - 1
    print(f"\n(site, numeric feature) histograms released: {len(pairs)} of {len(pairs)}")
    for feature in numeric:
        bins = result["histograms"][feature]["global"]
        sizes = {s: len(b) for s, b in result["histograms"][feature].items() if s != "global"}
        print(f"{feature}: global {len(bins)} bins over {result['histogram_sites'][feature]}: "
              + " ".join(f"[{lo:g}, {hi:g}): {n}" for lo, hi, n in bins) + f"; per site {sizes}")


def test_every_histogram_counts_its_records_exactly(production_run: StatsRun, frames: dict) -> None:
    """Noise moves only the outer edges: each site's bins and each global bin hold exactly their records."""
    result = production_run.result
    for feature, per_site in result["histograms"].items():
        sites = sorted(set(per_site) - {"global"})
        assert result["histogram_sites"][feature] == sites, feature
        spans = {(bins[0][0], bins[-1][1]) for bins in per_site.values()}
        assert len(spans) == 1, f"{feature}: histograms over different ranges {spans}"
        global_edges = edges_of(per_site["global"])
        for site in sites:
            counts, _ = np.histogram(values(frames, feature, [site]), bins=edges_of(per_site[site]))
            assert [b[2] for b in per_site[site]] == counts.tolist(), (feature, site)
            assert set(global_edges) <= set(edges_of(per_site[site])), (feature, site)
        counts, _ = np.histogram(values(frames, feature, sites), bins=global_edges)
        assert [b[2] for b in per_site["global"]] == counts.tolist(), feature
        assert counts.sum() == values(frames, feature, sites).size, feature


def test_sites_merged_small_bins_and_said_so(stack: Stack, production_run: StatsRun) -> None:
    result = production_run.result
    numeric = numeric_features(production_run.config["data"]["features"])
    merged = []
    for site in production_run.sites:
        log = (stack.poc().site_workspace(site) / production_run.job_id / "log.txt").read_text()
        for feature in numeric:
            lines = [line for line in log.splitlines()
                     if "histogram rule: merged the " in line and f" bins of {feature} into " in line]
            if lines:
                released_bins = len(result["histograms"][feature][site])
                assert any(f"into {released_bins} for client {site}" in line for line in lines), (site, feature)
                merged.append((site, feature))
    assert len({site for site, _ in merged}) >= 2, merged
    print(f"\nmerged at the site: {sorted(merged)}")
