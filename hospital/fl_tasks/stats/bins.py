"""Shared histogram bins for numeric features: the sites' rank groups, the server's edges, the global.

Equal-width bins over the noised range leave a numeric feature's tails nearly empty, so a hospital
would have to withhold its histogram. Instead, in the same statistics job:

1. **Round 1.** Each site sends, with its count, sum and noised min/max, its **rank groups**
   (:func:`rank_groups`): its sorted values cut into consecutive groups of at least ``min_count``
   records each, and each group's mean and size. A group mean is an aggregate like the feature's mean;
   no value of a single record, and no exact min or max, leaves the site.
2. **Server, between the rounds.** From every site's rank groups and noised range it estimates the pooled
   distribution and puts the shared edges at its quantiles, rounded to readable values
   (:func:`shared_edges`); the noised global min and max stay the outer edges. It then picks the cuts
   every site is expected to hold ``min_count`` records on each side of (:func:`plan_shared_cuts`), so
   that the sites keep the same cuts and the global histogram can stay fine.
3. **Round 2.** Each site counts its records on the shared edges and merges neighbouring bins where one
   would hold fewer than ``min_count`` records (``fl_tasks.stats.privacy``), keeping the planned cuts
   where it can. It releases that one set of bins.
4. **Server, at the end.** The global histogram sums the sites' released bins over the cuts they all
   kept (:func:`common_bins`): each global bin is a sum of whole site bins, so it is exact, and it says
   which sites it covers.

Nothing here imports NVFlare: the server and site components (``fl_tasks.stats.controller``,
``fl_tasks.stats.executor``) call these functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: the planned cuts leave every site an estimated ``PLAN_MARGIN * min_count`` records per bin (or none)
PLAN_MARGIN = 1.2
#: a site expected to hold fewer records than this in a bin counts as holding none there
PLAN_EMPTY = 0.5


def rank_groups(values: np.ndarray, min_count: int) -> list[list[float]]:
    """Return ``[mean, size]`` of consecutive groups of the sorted values, each of ``min_count`` records or more.

    About the square root of the record count groups, as many as ``min_count`` allows; none when there
    are fewer than ``min_count`` records.

    :param values: the site's non-missing values of one feature
    :param min_count: the fewest records a group may hold (``privacy.min_count``)
    """
    size = int(values.size)
    if size == 0 or size < min_count:
        return []
    count = max(1, min(round(math.sqrt(size)), size // max(min_count, 1)))
    return [[float(part.mean()), int(part.size)] for part in np.array_split(np.sort(values), count)]


@dataclass(frozen=True)
class SiteSummary:
    """What the server knows of one site's values of one feature after round 1.

    :param groups: the site's rank groups, ``[mean, size]`` in value order
    :param low: the site's noised minimum (below every value)
    :param high: the site's noised maximum (above every value)
    """

    groups: Sequence[Sequence[float]]
    low: float
    high: float

    @property
    def size(self) -> float:
        """Return the site's record count."""
        return float(sum(size for _, size in self.groups))

    def cdf(self, points: np.ndarray) -> np.ndarray:
        """Return the estimated number of the site's records below each point.

        Piecewise linear through half of each group at its mean, from none at ``low`` to all at ``high``.

        :param points: where to evaluate
        """
        xs, ys, below = [self.low], [0.0], 0.0
        for mean, size in self.groups:
            xs.append(min(max(mean, self.low), self.high))
            ys.append(below + size / 2)
            below += size
        xs.append(self.high)
        ys.append(below)
        x, y = np.asarray(xs), np.asarray(ys)
        keep = np.append(x[1:] > x[:-1], True)  # equal means: one point, the highest
        return np.interp(points, x[keep], y[keep], left=0.0, right=below)


def pooled_quantiles(summaries: Sequence[SiteSummary], probabilities: Sequence[float]) -> np.ndarray:
    """Return the quantiles of the sites' pooled records, as the summaries estimate them.

    :param summaries: the sites' summaries
    :param probabilities: fractions in [0, 1]
    """
    knots = np.unique(np.concatenate([[s.low, s.high, *(m for m, _ in s.groups)] for s in summaries]))
    below = sum(s.cdf(knots) for s in summaries)
    rising = np.append(True, below[1:] > below[:-1])  # invert only where records are
    return np.interp(np.asarray(probabilities) * below[-1], below[rising], knots[rising])


def readable_step(spread: float, bins: int) -> float:
    """Return the largest of 1, 2 or 5 times a power of ten at most ``spread / bins`` (0 for no spread).

    :param spread: the range the inner edges span
    :param bins: how many bins should fit in it
    """
    raw = spread / bins
    if not math.isfinite(raw) or raw <= 0:
        return 0.0
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (5, 2, 1) if m * power <= raw * (1 + 1e-9))


def shared_edges(summaries: Sequence[SiteSummary], low: float, high: float, bins: int) -> list[float]:
    """Return strictly increasing bin edges: ``low``, the pooled quantiles rounded readably, ``high``.

    The inner edges sit at the ``i / bins`` quantiles, each rounded to a multiple of a step of 1, 2 or 5
    times a power of ten (about a bin's width between the 10th and 90th percentiles); edges that round
    alike are kept once, so there may be fewer than ``bins`` bins.

    :param summaries: every site's summary of the feature
    :param low: the noised global minimum, the first edge
    :param high: the noised global maximum, the last edge
    :param bins: how many bins to aim for
    """
    if not summaries or not high > low:
        return [low, high]
    inner = pooled_quantiles(summaries, [i / bins for i in range(1, bins)])
    p10, p90 = pooled_quantiles(summaries, [0.1, 0.9])
    step = readable_step(p90 - p10, bins) or readable_step(high - low, bins)
    if step == 0:
        return [low, high]
    decimals = max(0, -math.floor(math.log10(step)))
    rounded = {round(round(q / step) * step, decimals) for q in inner}
    return [low, *sorted(e for e in rounded if low < e < high), high]


def plan_shared_cuts(summaries: Sequence[SiteSummary], edges: Sequence[float], min_count: int) -> list[float]:
    """Return the inner edges the sites should all keep: the most bins every site can expect to fill.

    A bin qualifies when each site is estimated to hold at least ``PLAN_MARGIN * min_count`` of its
    records there, or none (outside its noised range). Among the partitions into qualifying bins the one
    with the most bins is chosen; the whole range is the fallback.

    :param summaries: every site's summary of the feature
    :param edges: the shared edges (:func:`shared_edges`)
    :param min_count: ``privacy.min_count``
    """
    points = np.asarray(edges, dtype=float)
    below = np.array([s.cdf(points) for s in summaries]) if summaries else np.zeros((0, points.size))
    last = points.size - 1
    best: list[float] = [-math.inf] * (last + 1)
    previous = [0] * (last + 1)
    best[0] = 0
    for end in range(1, last + 1):
        for start in range(end):
            if best[start] == -math.inf:
                continue
            inside = below[:, end] - below[:, start]
            fillable = np.all((inside >= PLAN_MARGIN * min_count) | (inside < PLAN_EMPTY))
            if (fillable or (start, end) == (0, last)) and best[start] + 1 > best[end]:
                best[end], previous[end] = best[start] + 1, start
    cuts, end = [], previous[last]
    while end > 0:
        cuts.append(float(points[end]))
        end = previous[end]
    return sorted(cuts)


def common_bins(
    site_bins: Mapping[str, Sequence[Sequence[float]]],
) -> list[tuple[float, float, int]]:
    """Return the global histogram: the sites' bins summed over the cuts every site kept.

    Every site must have binned over the same range with cuts from the same shared edges; a global bin
    is then the exact sum of whole site bins.

    :param site_bins: site -> its released bins, ``(low, high, count)`` in order
    :raises ValueError: when the sites' bins do not span the same range
    """
    if not site_bins:
        return []
    spans = {site: (bins[0][0], bins[-1][1]) for site, bins in site_bins.items() if bins}
    if len(set(spans.values())) != 1 or len(spans) != len(site_bins):
        raise ValueError(f"the sites' histograms do not span one range: {spans}")
    ((low, high),) = set(spans.values())
    cuts = set.intersection(*({b[1] for b in bins[:-1]} for bins in site_bins.values()))
    edges = [low, *sorted(cuts), high]
    counts = [0] * (len(edges) - 1)
    for bins in site_bins.values():
        for bin_low, _, count in bins:
            counts[int(np.searchsorted(edges, bin_low, side="right")) - 1] += int(count)
    return [(a, b, n) for a, b, n in zip(edges[:-1], edges[1:], counts, strict=True)]
