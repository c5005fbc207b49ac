"""The sites' release rules (``fl_tasks.stats.privacy``) on hand-made statistics, without a federation."""

from __future__ import annotations

from typing import Any

from nvflare.app_common.abstract.statistics_spec import Bin, Histogram, HistogramType

from fl_tasks.stats.privacy import SmallCountCleanser, indicator_groups, small_bin

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
    }


def second_round() -> dict[str, Any]:
    return {
        "count": {"heart": {f: n for f, (n, _) in SITE.items()}},
        "failure_count": {"heart": dict.fromkeys(SITE, 0)},
        "var": {"heart": dict.fromkeys(SITE, 0.5)},
        "histogram": {"heart": {"age": hist(0, 20, 30, 0), "chol": hist(4), "sex": hist(5, 45),
                                "cp=a": hist(30, 20), "cp=b": hist(25, 25), "cp=c": hist(45, 5)}},
    }


def cleanse(statistics: dict[str, Any], site: dict[str, tuple[int, float]] = SITE) -> dict[str, Any]:
    cleanser = SmallCountCleanser(min_count=K, indicator_groups=GROUPS, generator_id="gen")
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


def test_a_histogram_with_a_small_bin_is_withheld_alone() -> None:
    statistics = second_round()
    statistics["histogram"]["heart"]["age"] = hist(0, 9, 41, 0)
    statistics["histogram"]["heart"]["cp=c"] = hist(35, 15)
    cleansed = cleanse(statistics, {**SITE, "cp=c": (50, 15.0)})  # every category large enough now
    assert kept(cleansed, "histogram") == {"cp=a", "cp=b", "cp=c"}
    assert {"age", "cp=a", "cp=b", "cp=c"} <= kept(cleansed, "count")
    assert {"age", "cp=a", "cp=b", "cp=c"} <= kept(cleansed, "var")


def test_small_bin_means_non_empty_and_below_the_minimum() -> None:
    assert not small_bin([[0, 1, 0], [1, 2, 10]], K)
    assert small_bin([[0, 1, 1], [1, 2, 10]], K)
    assert small_bin(hist(10, 9).bins, K)


def test_indicator_groups_follow_the_encoding() -> None:
    spec = {"numeric": ["age"], "binary": {"sex": "Male"}, "categorical": {"cp": ["a", "b"]}}
    assert indicator_groups(spec) == {"sex": ["sex"], "cp": ["cp=a", "cp=b"]}
