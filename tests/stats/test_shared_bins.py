"""Shared bins for numeric features (``fl_tasks.stats.bins``) and the sites' merging of small bins
(``fl_tasks.stats.privacy.coarsen``), without a federation.

The last test runs the whole design as the job does, site by site, on the demo hospitals' records: the
rank groups, NVFlare's own min/max noise, the server's edges and planned cuts, each site's merged bins
through its release rules, and the global histogram. ``test_histograms.py`` checks the same on a real
federation.
"""

from __future__ import annotations

import random
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from nvflare.app_common.statistics.min_max_cleanser import AddNoiseToMinMax

from fl_tasks.stats.bins import (
    SiteSummary,
    common_bins,
    plan_shared_cuts,
    rank_groups,
    readable_step,
    shared_edges,
)
from fl_tasks.stats.privacy import coarsen, max_bins, small_bin

K = 10
DEMO = Path(__file__).resolve().parents[2] / "data" / "demo" / "heart_disease_uci.csv"
NUMERIC = ("age", "trestbps", "chol", "thalch", "oldpeak")


def hist(edges: list[float], counts: list[int]) -> list[tuple[float, float, int]]:
    return [(a, b, n) for a, b, n in zip(edges[:-1], edges[1:], counts, strict=True)]


def test_rank_groups_hold_min_count_records_each() -> None:
    rng = np.random.default_rng(0)
    for size in (10, 11, 19, 20, 57, 123, 304):
        values = rng.normal(50, 10, size)
        groups = rank_groups(values, K)
        assert all(count >= K for _, count in groups), size
        assert sum(count for _, count in groups) == size
        means = [mean for mean, _ in groups]
        assert means == sorted(means) and means[0] > values.min() and means[-1] < values.max()
        assert len(groups) == min(round(size**0.5), size // K)
    assert rank_groups(np.arange(9.0), K) == []
    assert rank_groups(np.array([]), 1) == []


def test_shared_edges_are_readable_quantiles_inside_the_noised_range() -> None:
    rng = np.random.default_rng(1)
    sites = [rng.normal(55, 9, 300).round(), rng.normal(48, 8, 290).round(), rng.normal(60, 8, 120).round()]
    summaries = [SiteSummary(rank_groups(v, K), v.min() * 0.8, v.max() * 1.2) for v in sites]
    low, high = min(s.low for s in summaries), max(s.high for s in summaries)
    edges = shared_edges(summaries, low, high, 20)
    assert edges[0] == low and edges[-1] == high
    assert all(a < b for a, b in pairwise(edges))
    assert all(e == round(e) for e in edges[1:-1]), edges  # ages: whole years
    pooled = np.concatenate(sites)
    reference = np.quantile(pooled, [0.25, 0.5, 0.75])
    estimated = np.quantile(edges[1:-1], [0.25, 0.5, 0.75])
    assert np.abs(reference - estimated).max() <= 2, (reference, estimated)
    assert readable_step(25, 20) == 1 and readable_step(2.4, 20) == 0.1 and readable_step(120, 20) == 5
    assert shared_edges([], 0.0, 1.0, 20) == [0.0, 1.0]


def test_planned_cuts_leave_every_site_enough_records_or_none() -> None:
    young, old = np.arange(20.0, 60.0, 0.25), np.arange(50.0, 90.0, 0.5)  # 160 and 80 records
    summaries = [SiteSummary(rank_groups(v, K), v.min() - 1, v.max() + 1) for v in (young, old)]
    edges = shared_edges(summaries, 19.0, 91.0, 20)
    cuts = plan_shared_cuts(summaries, edges, K)
    bounds = [edges[0], *cuts, edges[-1]]
    assert len(bounds) - 1 >= 6, bounds
    for values in (young, old):
        counts, _ = np.histogram(values, bins=bounds)
        assert all(c == 0 or c >= K for c in counts), (bounds, counts)
    assert plan_shared_cuts([], [0.0, 1.0, 2.0], K) == [1.0]  # no site: nothing to leave room for


def test_coarsen_releases_only_bins_of_zero_or_min_count_records() -> None:
    rng = random.Random(2)
    for _ in range(500):
        size = rng.randint(2, 25)
        edges = sorted(rng.sample(range(1000), size + 1))
        counts = [rng.choice([0, 0, 1, 3, 9, 10, 12, 40]) for _ in range(size)]
        most = rng.randint(0, size + 2)
        keep = frozenset(float(e) for e in edges[1:-1] if rng.random() < 0.3)
        merged = coarsen(hist([float(e) for e in edges], counts), K, most, keep)
        assert (merged[0][0], merged[-1][1]) == (edges[0], edges[-1])
        assert all(a[1] == b[0] for a, b in pairwise(merged))
        assert {b[1] for b in merged[:-1]} <= set(edges), "a merged bin ends on an edge it had"
        assert sum(b[2] for b in merged) == sum(counts)
        assert len(merged) <= max(most, 1)
        if not small_bin(merged, K):
            continue
        assert len(merged) == 1 or most < 1 or sum(counts) < K, (counts, most, merged)


def test_coarsen_keeps_the_planned_cuts_where_it_can() -> None:
    bins = hist([0.0, 1.0, 2.0, 3.0, 4.0], [30, 4, 30, 30])
    assert [b[2] for b in coarsen(bins, K, 10)] == [34, 30, 30]  # the smaller neighbour
    assert [b[2] for b in coarsen(bins, K, 10, frozenset({1.0}))] == [30, 34, 30]  # not across cut 1.0
    # an empty neighbour only when the planned cut forces it; the merged bin keeps growing to K
    bins = hist([0.0, 1.0, 2.0, 3.0, 4.0], [30, 4, 0, 30])
    assert [b[2] for b in coarsen(bins, K, 10, frozenset({1.0}))] == [30, 34]
    # too many bins for NVFlare's limit: the emptiest neighbours merge, planned cuts last
    bins = hist([0.0, 1.0, 2.0, 3.0, 4.0], [10, 10, 10, 10])
    assert coarsen(bins, K, 2, frozenset({2.0})) == [(0.0, 2.0, 20), (2.0, 4.0, 20)]
    assert max_bins(123, 10) == 11 and max_bins(105, 10) == 9 and max_bins(14, 10) == 0


def test_the_global_histogram_sums_whole_site_bins_over_common_cuts() -> None:
    fine = [0.0, 1.0, 2.0, 3.0, 4.0]
    per_site = {
        "a": hist(fine, [10, 20, 30, 40]),
        "b": hist([0.0, 2.0, 3.0, 4.0], [15, 0, 25]),
        "c": hist([0.0, 1.0, 3.0, 4.0], [12, 18, 11]),
    }
    assert common_bins(per_site) == [(0.0, 3.0, 105), (3.0, 4.0, 76)]
    assert common_bins({"a": per_site["a"]}) == per_site["a"]
    with pytest.raises(ValueError, match="one range"):
        common_bins({"a": per_site["a"], "d": hist([0.0, 2.0, 5.0], [10, 10])})
    assert common_bins({}) == []


@pytest.mark.parametrize("seed", range(3))
def test_at_the_defaults_every_demo_hospital_releases_every_numeric_histogram(seed: int) -> None:
    """The whole design on the demo hospitals, with NVFlare's min/max noise: k = 10, 10 %, 20 shared bins."""
    frame = pd.read_csv(DEMO)
    for column in ("trestbps", "chol"):  # zero means missing
        frame.loc[frame[column] == 0, column] = np.nan
    noise = AddNoiseToMinMax(min_noise_level=0.1, max_noise_level=0.3)
    random.seed(seed)
    np.random.seed(seed)
    for feature in NUMERIC:
        values = {site: rows[feature].dropna().to_numpy(float) for site, rows in frame.groupby("dataset")}
        values = {site: v for site, v in values.items() if v.size >= K}  # Switzerland records no chol
        ranges = {site: noise.apply({"min": {"d": {feature: v.min()}}, "max": {"d": {feature: v.max()}}}, site)[0]
                  for site, v in values.items()}
        summaries = [SiteSummary(rank_groups(v, K), ranges[site]["min"]["d"][feature],
                                 ranges[site]["max"]["d"][feature]) for site, v in values.items()]
        edges = shared_edges(summaries, min(s.low for s in summaries), max(s.high for s in summaries), 20)
        cuts = frozenset(plan_shared_cuts(summaries, edges, K))
        released = {}
        for site, v in values.items():
            counts, _ = np.histogram(v, bins=edges)
            bins = coarsen(hist(edges, counts.tolist()), K, max_bins(v.size, 10), cuts)
            assert not small_bin(bins, K) and len(bins) <= max_bins(v.size, 10), (feature, site, bins)
            released[site] = bins
            assert len(bins) >= 5, (feature, site, len(bins))
        global_bins = common_bins(released)
        pooled, _ = np.histogram(np.concatenate(list(values.values())), bins=[global_bins[0][0]] +
                                 [b[1] for b in global_bins])
        assert [b[2] for b in global_bins] == pooled.tolist(), feature
        assert len(global_bins) >= (4 if feature == "oldpeak" else 5), (feature, global_bins)
