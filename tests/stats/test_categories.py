"""Categorical features get per-category counts, per site and global, under the same privacy rules.

Indicator features (``sex``, ``fbs``, ``exang``, ``cp=…``, ``restecg=…``) are 0/1 columns: their ``sum``
is the category count. On the ``production`` scenario (the configured rules) nothing stored, in the
result or in the warehouse, implies a category count (or its complement) below ``privacy.min_count``:
not a sum, not ``mean * count``, not the ``stddev`` with the count, not a histogram bin, and not the
remainder of a categorical feature's other categories.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from stats_jobs import StatsRun, expected_withheld, released, site_features, warehouse_rows

from fl_tasks.stats.privacy import indicator_groups
from flareflow.local.stack import Stack

pytestmark = pytest.mark.federation


@pytest.fixture(scope="module")
def frames(stack: Stack, production_run: StatsRun) -> dict:
    return site_features(stack, production_run.config)


@pytest.fixture(scope="module")
def stored(stack: Stack, production_run: StatsRun) -> dict:
    """The warehouse rows of the production run: released values by (site, feature, statistic), bins."""
    rows = warehouse_rows(stack, production_run)
    values = {(s, f, stat): v for s, f, stat, v, withheld in rows["feature_stats"] if not withheld and v is not None}
    return {"values": values, "bins": rows["feature_histograms"]}


def implied_counts(values: dict, site: str, feature: str) -> Iterator[tuple[str, float]]:
    """Yield every category count (or complement) the stored statistics of one indicator imply."""
    n = values.get((site, feature, "count"))
    total, mean, stddev = (values.get((site, feature, s)) for s in ("sum", "mean", "stddev"))
    if total is not None:
        yield "sum", total
        if n is not None:
            yield "count - sum", n - total
    if mean is not None and n is not None:
        yield "mean * count", mean * n
        yield "(1 - mean) * count", (1 - mean) * n
    if stddev is not None and n is not None and n > 1:
        # a 0/1 column with share p: stddev² = p (1 - p) n / (n - 1)
        share = 0.5 - math.sqrt(max(0.0, 0.25 - stddev**2 * (n - 1) / n))
        yield "stddev", share * n
        yield "stddev (complement)", (1 - share) * n


def test_the_data_holds_small_categories_the_rules_withhold(production_run: StatsRun, frames: dict) -> None:
    withheld = expected_withheld(frames, production_run.config)
    small = {(s, f) for s, f in withheld if f in production_run.indicators}
    assert ("cleveland", "restecg=st-t abnormality") in small  # 4 of 304 records
    assert ("va-long-beach", "sex") in small  # 6 of 200 are not male: the complement
    result = production_run.result
    for feature in production_run.indicators:
        expected = [s for s in production_run.sites if (s, feature) not in withheld]
        for statistic in ("count", "sum", "mean", "stddev"):
            assert released(result, statistic, feature) == expected, (feature, statistic)


def test_no_stored_indicator_statistic_implies_a_small_category(production_run: StatsRun, stored: dict) -> None:
    k, values = production_run.min_count, stored["values"]
    checked = 0
    for site in [*production_run.sites, "global"]:
        for feature in production_run.indicators:
            for how, count in implied_counts(values, site, feature):
                assert count > k - 0.5, f"{site} {feature}: {how} implies {count:.2f} < {k}"
                checked += 1
    assert checked > 100
    for site, feature, _, _, _, count in stored["bins"]:
        if feature in production_run.indicators:
            assert count == 0 or count >= k, (site, feature, count)


def test_a_categorical_feature_is_released_whole_or_not_at_all(production_run: StatsRun, stored: dict) -> None:
    k, values = production_run.min_count, stored["values"]
    for column, members in indicator_groups(production_run.config["data"]["features"]).items():
        if len(members) < 2:
            continue
        for site in [*production_run.sites, "global"]:
            sums = [values.get((site, f, "sum")) for f in members]
            assert all(s is None for s in sums) or all(s is not None for s in sums), (site, column, sums)
            counts = {values[(site, f, "count")] for f in members if (site, f, "count") in values}
            if counts and None not in sums:
                remainder = counts.pop() - sum(sums)  # records of another category than those listed
                assert remainder == 0 or remainder >= k, (site, column, remainder)


def test_the_result_lists_category_counts_per_site_and_global(production_run: StatsRun, frames: dict) -> None:
    result = production_run.result
    categories = result["categories"]
    assert set(categories) <= set(production_run.indicators)
    for feature in production_run.indicators:
        sums = result["statistics"]["sum"].get(feature, {})
        assert categories.get(feature, {}) == {site: round(v) for site, v in sums.items()}, feature
        per_site = {s: n for s, n in categories.get(feature, {}).items() if s != "global"}
        for site, count in per_site.items():
            assert count == int(frames[site][feature].sum()), (site, feature)
        if per_site:
            assert categories[feature]["global"] == sum(per_site.values()), feature
    assert categories["sex"]["cleveland"] == 207  # male patients in Cleveland's records before November 2026
