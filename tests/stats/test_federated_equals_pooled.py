"""A real federated statistics job gives what pooling the hospitals' records would give.

The ``exact`` scenario turns the noise off (``min_noise_level = max_noise_level = 0``) and sets the
minimum count to 1, so the release rules withhold only what has no records (Switzerland records no
cholesterol), and ``stats.precision`` to 12 decimals. The reference pools the sites' own data files
(the sites that released the statistic, which the first test pins down).

Rounding, accounted for: the sites and the server round every statistic to ``precision`` decimals, so a
sum is compared with the pooled sum rounded the same way (for integer-valued features the rounding is a
no-op and the sums are equal outright).

Histograms: every site bins a feature on the same edges (a numeric feature on the shared edges at the
federation's quantiles, ``fl_tasks.stats.bins``), and with a minimum count of 1 no site merges a bin.
The global histogram then has the sites' very bins, and each of its bins holds exactly the pooled
records that fall in it.
"""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest
from stats_jobs import StatsRun, released, site_features, values

from fl_tasks.stats.client import numeric_features
from flareflow.local.stack import Stack

pytestmark = pytest.mark.federation

REL = 1e-9


@pytest.fixture(scope="module")
def frames(stack: Stack, exact_run: StatsRun) -> dict:
    return site_features(stack, exact_run.config)


def test_noise_off_is_a_valid_config(exact_run: StatsRun) -> None:
    privacy = exact_run.config["privacy"]
    assert (privacy["min_noise_level"], privacy["max_noise_level"]) == (0, 0)
    assert exact_run.config["stats"]["precision"] == 12


def test_only_a_feature_without_records_is_withheld(exact_run: StatsRun, frames: dict) -> None:
    result = exact_run.result
    for feature in exact_run.features:
        expected = [s for s in exact_run.sites if frames[s][feature].notna().any()]
        for statistic in ("count", "sum", "mean", "stddev"):
            assert released(result, statistic, feature) == expected, (feature, statistic)
        assert sorted(set(result["histograms"][feature]) - {"global"}) == expected, feature
    assert "switzerland" not in released(result, "count", "chol")
    assert result["sites"] == sorted(exact_run.sites)


def test_global_count_and_sum_equal_the_pooled_ones(exact_run: StatsRun, frames: dict) -> None:
    result, precision = exact_run.result, exact_run.config["stats"]["precision"]
    for feature in exact_run.features:
        for scope in [*released(result, "count", feature), "global"]:
            sites = released(result, "count", feature) if scope == "global" else [scope]
            pooled = values(frames, feature, sites)
            assert result["statistics"]["count"][feature][scope] == pooled.size, (feature, scope)
            reference = math.fsum(pooled)
            assert result["statistics"]["sum"][feature][scope] == round(reference, precision), (feature, scope)
            if np.all(pooled == np.round(pooled)):  # integer-valued: no rounding at all
                assert result["statistics"]["sum"][feature][scope] == reference, (feature, scope)


def test_global_mean_and_stddev_equal_the_pooled_ones(exact_run: StatsRun, frames: dict) -> None:
    result = exact_run.result
    for feature in exact_run.features:
        for scope in [*released(result, "count", feature), "global"]:
            sites = released(result, "count", feature) if scope == "global" else [scope]
            pooled = values(frames, feature, sites)
            mean, stddev = result["statistics"]["mean"][feature][scope], result["statistics"]["stddev"][feature][scope]
            assert mean == pytest.approx(pooled.mean(), rel=REL, abs=0), (feature, scope)
            assert stddev == pytest.approx(pooled.std(ddof=1), rel=REL, abs=0), (feature, scope)


def test_global_histograms_equal_the_pooled_ones_on_the_reported_bins(exact_run: StatsRun, frames: dict) -> None:
    result = exact_run.result
    numeric = numeric_features(exact_run.config["data"]["features"])
    for feature in exact_run.features:
        per_site = {s: h for s, h in result["histograms"][feature].items() if s != "global"}
        edges = {tuple([h[0][0], *(b[1] for b in h)]) for h in per_site.values()}
        assert len(edges) == 1, f"{feature}: sites binned on different edges {edges}"
        (shared,) = edges
        assert all(a < b for a, b in pairwise(shared)), feature
        for site, histogram in per_site.items():
            counts, _ = np.histogram(values(frames, feature, [site]), bins=shared)
            assert [b[2] for b in histogram] == counts.tolist(), (feature, site)
        pooled = values(frames, feature, sorted(per_site))
        counts, _ = np.histogram(pooled, bins=shared)
        global_bins = result["histograms"][feature]["global"]
        assert [b[2] for b in global_bins] == counts.tolist(), feature
        assert [global_bins[0][0], *(b[1] for b in global_bins)] == list(shared), feature
        assert result["histogram_sites"][feature] == sorted(per_site), feature
        assert sum(counts) == result["statistics"]["count"][feature]["global"], feature  # no record out of range
        if feature in numeric:  # the shared edges: readable quantiles, not the indicators' equal widths
            assert len(shared) - 1 >= 8, (feature, shared)
            assert np.count_nonzero(counts == 0) <= counts.size // 5, (feature, counts.tolist())
        # noise off: the range is the true one (AddNoiseToMinMax maps a 0 to -1e-5 / +1e-5 even then)
        low, high = shared[0], shared[-1]
        true_low, true_high = pooled.min(), pooled.max()
        assert low == (-1e-5 if true_low == 0 else true_low), feature
        assert high == (1e-5 if true_high == 0 else true_high), feature
