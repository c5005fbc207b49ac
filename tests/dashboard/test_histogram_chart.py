"""The distributions chart plots variable-width bins honestly: as densities, and names what the global leaves out."""

from __future__ import annotations

import pytest

from flareflow.dashboard.charts import global_name, histogram_figure

SITES = ["a", "b", "global"]


def rows(site: str, bins: list[tuple[float, float, int]], covers: list[str] | None = None) -> list[dict]:
    return [{"site": site, "feature": "age", "bin": i, "low": lo, "high": hi, "count": n, "covers": covers}
            for i, (lo, hi, n) in enumerate(bins)]


def test_a_bin_height_is_its_share_per_unit_so_its_area_is_the_share() -> None:
    wide_and_narrow = [(20.0, 40.0, 50), (40.0, 45.0, 50)]  # same count, 4x narrower
    figure = histogram_figure(rows("a", wide_and_narrow) + rows("global", wide_and_narrow, ["a"]), SITES)
    (site, total) = figure.data
    assert list(site.x) == [20.0, 40.0, 45.0]
    assert list(site.y) == pytest.approx([0.5 / 20, 0.5 / 5, 0.5 / 5])
    assert sum(h * (b - a) for h, a, b in zip(site.y[:-1], site.x[:-1], site.x[1:], strict=True)) == pytest.approx(1)
    assert site.name == "a" and [d[3] for d in site.customdata[:-1]] == [0.5, 0.5]
    assert total.name == "global (without b)"


def test_the_global_name_says_which_hospitals_it_leaves_out() -> None:
    assert global_name(["a", "b"], SITES) == "global"
    assert global_name(["a"], SITES) == "global (without b)"
    assert global_name(None, SITES) == "global"  # loaded before coverage was recorded
