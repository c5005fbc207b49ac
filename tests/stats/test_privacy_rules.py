"""The sites' release rules (``fl_tasks.stats.privacy``) on hand-made statistics, without a federation."""

from __future__ import annotations

from typing import Any

import pytest
from nvflare.app_common.abstract.statistics_spec import Bin, Histogram, HistogramType

import fl_tasks.stats.privacy as privacy
from fl_tasks.stats.privacy import RANK_GROUPS, SmallCountCleanser, indicator_groups, small_bin

K = 10
GROUPS = {"sex": ["sex"], "cp": ["cp=a", "cp=b", "cp=c"]}
#: feature -> (count, sum) at the site
SITE = {"age": (50, 2500.0), "chol": (4, 800.0), "sex": (50, 45.0), "cp=a": (50, 20.0), "cp=b": (50, 25.0),
        "cp=c": (50, 5.0)}


class FakeGenerator:
    """The site's statistics generator, as the cleanser asks it for category counts."""

    def __init__(self, site: dict[str, tuple[int, float]]) -> None:
        self.site = site

    def sum(self, dataset: str, feature: str) -> float:
        return self.site[feature][1]

    def shared_cuts(self, dataset: str, feature: str) -> frozenset[float]:
        return frozenset()


def hist(*counts: int) -> Histogram:
    return Histogram(HistogramType.STANDARD, [Bin(float(i), float(i + 1), c) for i, c in enumerate(counts)])


def first_round() -> dict[str, Any]:
    return {
        "count": {"heart": {f: n for f, (n, _) in SITE.items()}},
        "failure_count": {"heart": dict.fromkeys(SITE, 0)},
        "sum": {"heart": {f: s for f, (_, s) in SITE.items()}},
        "mean": {"heart": {f: s / n for f, (n, s) in SITE.items()}},
        "min": {"heart": dict.fromkeys(SITE, 0.0)},
        "max": {"heart": dict.fromkeys(SITE, 1.0)},
        RANK_GROUPS: {"heart": {"age": [[40.0, 25], [60.0, 25]], "chol": [[200.0, 4]]}},
    }


def second_round() -> dict[str, Any]:
    return {
        "count": {"heart": {f: n for f, (n, _) in SITE.items()}},
        "failure_count": {"heart": dict.fromkeys(SITE, 0)},
        "var": {"heart": dict.fromkeys(SITE, 0.5)},
        "histogram": {"heart": {"age": hist(0, 20, 30, 0), "chol": hist(4), "sex": hist(5, 45),
                                "cp=a": hist(30, 20), "cp=b": hist(25, 25), "cp=c": hist(45, 5)}},
    }


def cleanse(
    statistics: dict[str, Any], site: dict[str, tuple[int, float]] = SITE, max_bins_percent: float = 100
) -> dict[str, Any]:
    cleanser = SmallCountCleanser(min_count=K, indicator_groups=GROUPS, generator_id="gen",
                                  max_bins_percent=max_bins_percent)
    cleanser._generator = FakeGenerator(site)
    cleansed, modified = cleanser.apply(statistics, "site-1")
    assert modified
    return cleansed


def kept(statistics: dict[str, Any], statistic: str) -> set[str]:
    return set(statistics[statistic]["heart"])


def test_a_feature_below_min_count_keeps_nothing_but_its_failure_count() -> None:
    for statistics in (cleanse(first_round()), cleanse(second_round())):
        for statistic in statistics:
            assert ("chol" in kept(statistics, statistic)) == (statistic == "failure_count"), statistic


def test_a_small_category_or_complement_withholds_its_whole_feature_group() -> None:
    # sex: 45 of 50 (complement 5); cp=c: 5 of 50, which withholds cp=a and cp=b too
    for statistics in (cleanse(first_round()), cleanse(second_round())):
        for statistic in statistics:
            if statistic != "failure_count":
                assert kept(statistics, statistic) <= {"age"}, statistic
        assert kept(statistics, "failure_count") == set(SITE)


def test_a_small_bin_is_merged_into_a_neighbour_and_the_rest_stays() -> None:
    statistics = second_round()
    statistics["histogram"]["heart"]["age"] = hist(0, 9, 41, 0)
    statistics["histogram"]["heart"]["cp=c"] = hist(35, 15)
    cleansed = cleanse(statistics, {**SITE, "cp=c": (50, 15.0)})  # every category large enough now
    assert kept(cleansed, "histogram") == {"age", "cp=a", "cp=b", "cp=c"}
    assert [tuple(b) for b in cleansed["histogram"]["heart"]["age"].bins] == [(0.0, 1.0, 0), (1.0, 3.0, 50),
                                                                             (3.0, 4.0, 0)]
    assert {"age", "cp=a", "cp=b", "cp=c"} <= kept(cleansed, "count")
    assert {"age", "cp=a", "cp=b", "cp=c"} <= kept(cleansed, "var")


def test_a_histogram_is_merged_below_nvflares_bin_limit_or_withheld() -> None:
    statistics = second_round()
    statistics["histogram"]["heart"]["age"] = hist(*[10] * 5)  # 50 records: 10 % allows 4 bins
    cleansed = cleanse(statistics, max_bins_percent=10)
    assert len(cleansed["histogram"]["heart"]["age"].bins) == 4
    statistics = second_round()
    cleansed = cleanse(statistics, max_bins_percent=2)  # 50 records: 2 % allows none
    assert "age" not in kept(cleansed, "histogram") and "age" in kept(cleansed, "count")


def test_the_final_guard_withholds_a_small_bin_whatever_merging_did(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(privacy, "coarsen", lambda bins, *_: list(bins))  # failure injection: no merging
    statistics = second_round()
    statistics["histogram"]["heart"]["age"] = hist(0, 9, 41, 0)
    cleansed = cleanse(statistics)
    assert "age" not in kept(cleansed, "histogram")
    assert "age" in kept(cleansed, "count") and "age" in kept(cleansed, "var")


def test_rank_groups_below_the_minimum_are_withheld() -> None:
    statistics = first_round()
    statistics[RANK_GROUPS]["heart"]["age"] = [[40.0, 9], [60.0, 41]]  # a site never builds this
    assert "age" not in kept(cleanse(statistics), RANK_GROUPS)
    assert kept(cleanse(first_round()), RANK_GROUPS) == {"age"}  # chol: fewer than K records in all


def test_small_bin_means_non_empty_and_below_the_minimum() -> None:
    assert not small_bin([[0, 1, 0], [1, 2, 10]], K)
    assert small_bin([[0, 1, 1], [1, 2, 10]], K)
    assert small_bin(hist(10, 9).bins, K)


def test_indicator_groups_follow_the_encoding() -> None:
    spec = {"numeric": ["age"], "binary": {"sex": "Male"}, "categorical": {"cp": ["a", "b"]}}
    assert indicator_groups(spec) == {"sex": ["sex"], "cp": ["cp=a", "cp=b"]}
