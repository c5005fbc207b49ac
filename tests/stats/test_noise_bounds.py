"""With noise on, the histogram range the server used stays within the bounds the noise allows.

Each site sends its min and max through NVFlare's ``AddNoiseToMinMax`` (``min_max_cleanser.py``): with
``r`` drawn uniformly from ``[min_noise_level, max_noise_level]``, a min ``m`` becomes ``m * (1 - r)``
(``m > 0``), ``m * (1 + r)`` (``m < 0``) or ``-(1 - r) * 1e-5`` (``m == 0``), and a max ``M`` becomes
``M * (1 + r)``, ``M * (1 - r)`` or ``(1 + r) * 1e-5``. The server takes the smallest noisy min and the
largest noisy max over the sites that released the feature, and every site bins over that range. So the
histogram's outer edges lie between the smallest (largest) bound of each side over those sites, and
outside the true global range.

``noisy_ranges`` releases every histogram (minimum count 1), so all features are checked, including
negative minima (``oldpeak``) and zeros (the indicators); ``production`` is the configured privacy,
whose rules release the numeric features' histograms and those of the indicators with large enough
categories (see ``test_histograms.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
from stats_jobs import StatsRun, released, site_features, values

from fl_tasks.stats.client import numeric_features
from flareflow.local.stack import Stack

pytestmark = pytest.mark.federation


def noisy_min_bounds(true_min: float, low: float, high: float) -> tuple[float, float]:
    if true_min > 0:
        return true_min * (1 - high), true_min * (1 - low)
    if true_min < 0:
        return true_min * (1 + high), true_min * (1 + low)
    return -(1 - low) * 1e-5, -(1 - high) * 1e-5


def noisy_max_bounds(true_max: float, low: float, high: float) -> tuple[float, float]:
    if true_max > 0:
        return true_max * (1 + low), true_max * (1 + high)
    if true_max < 0:
        return true_max * (1 - high), true_max * (1 - low)
    return (1 + low) * 1e-5, (1 + high) * 1e-5


@pytest.mark.parametrize("scenario", ["noisy_ranges", "production"])
def test_histogram_range_within_the_noise_bounds(stack: Stack, scenario: str, request: pytest.FixtureRequest) -> None:
    run: StatsRun = request.getfixturevalue(f"{scenario}_run")
    privacy, precision = run.config["privacy"], run.config["stats"]["precision"]
    noise = (privacy["min_noise_level"], privacy["max_noise_level"])
    assert noise == (0.1, 0.3)
    tolerance = 0.5 * 10.0 ** -precision  # the site histograms' edges are rounded to `precision` decimals
    frames = site_features(stack, run.config)
    result = run.result
    checked = []
    for feature in run.features:
        per_site = {s: h for s, h in result["histograms"].get(feature, {}).items() if s != "global"}
        if not per_site:
            continue
        ranges = {(h[0][0], h[-1][1]) for h in per_site.values()}
        assert len(ranges) == 1, f"{feature}: sites binned over different ranges {ranges}"
        ((low, high),) = ranges
        contributors = released(result, "count", feature)  # their min and max set the range
        mins = [noisy_min_bounds(values(frames, feature, [s]).min(), *noise) for s in contributors]
        maxs = [noisy_max_bounds(values(frames, feature, [s]).max(), *noise) for s in contributors]
        assert min(b[0] for b in mins) - tolerance <= low <= min(b[1] for b in mins) + tolerance, feature
        assert max(b[0] for b in maxs) - tolerance <= high <= max(b[1] for b in maxs) + tolerance, feature
        pooled = values(frames, feature, contributors)
        assert low < pooled.min() and high > pooled.max(), f"{feature}: no noise on the range"
        global_bins = result["histograms"][feature]["global"]
        assert (global_bins[0][0], global_bins[-1][1]) == (low, high)
        # the noisy range still holds every record: the global histogram counts the pooled records
        pooled = values(frames, feature, sorted(per_site))
        counts, _ = np.histogram(pooled, bins=[low, *(b[1] for b in global_bins)])
        assert [b[2] for b in global_bins] == counts.tolist(), feature
        assert counts.sum() == pooled.size, feature
        checked.append(feature)
    if scenario == "noisy_ranges":
        assert checked == run.features
    else:
        assert set(numeric_features(run.config["data"]["features"])) <= set(checked), checked
