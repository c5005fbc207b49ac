"""What a hospital withholds from the federated statistics, decided at the hospital before anything leaves.

:class:`SmallCountCleanser` runs first in each site's ``StatisticsPrivacyFilter`` chain (see
``fl_tasks.stats.job``), before NVFlare's ``AddNoiseToMinMax`` (noisy min/max) and
``HistogramBinsCleanser`` (bin limit). It replaces NVFlare's ``MinCountCleanser``, whose rule it keeps and
extends. With ``k = privacy.min_count``, per site and feature:

1. **Minimum count.** A feature with fewer than ``k`` records (``count - failure_count``) is withheld
   entirely: count, sum, mean, stddev (and its variance), min, max, histogram. NVFlare's
   ``MinCountCleanser`` keeps the count; it is withheld here too, so the site contributes nothing for the
   feature, and every global statistic covers the same sites (NVFlare's global mean is the global sum
   over the global count: a count kept without its sum would bias it).
2. **Categories.** For a 0/1 indicator feature (a binary feature, or one category of a categorical
   feature) the sum *is* the category count, and mean, stddev and histogram reveal it as well. The
   feature is withheld when the category count or its complement (count - sum) is below ``k``. The
   categories of one categorical feature are withheld together: with all but one released, that one's
   count would be its count minus the others' sums.
3. **Histograms.** A site never releases a histogram bin holding 1 to ``k - 1`` records. It merges
   neighbouring bins instead (:func:`coarsen`): the smallest such bin joins a neighbour, preferring to
   keep the cuts the server planned for every site (``fl_tasks.stats.bins``), until every bin is empty
   or holds ``k`` records or more; then, while the histogram has as many bins as NVFlare's
   ``HistogramBinsCleanser`` forbids (``max_bins_percent`` of the count), the two neighbours with the
   fewest records merge. It releases only the merged bins, one set per feature, never the bins it
   merged. As the final guard, a histogram that still has such a bin (fewer than ``k`` records in all),
   or too many bins, or none, is withheld; the feature's other statistics stay. That a merge happened
   tells only that some bin held 1 to ``k - 1`` records, as withholding the histogram did before.
4. **Rank groups.** The numeric features' rank groups (``fl_tasks.stats.bins.rank_groups``), sent in the
   first round so the server can place shared bin edges, are means of ``k`` records or more; a
   feature's groups are withheld if one is smaller (the site never builds one, this is the guard).

The failure count is never withheld: flareflow's sites always report 0 (a missing value is left out of
the count, not counted as a failure), and it keeps a site whose every statistic is withheld in the
result, so that the warehouse records that site's statistics as withheld instead of the run failing
for a missing site.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nvflare.apis.event_type import EventType
from nvflare.apis.fl_context import FLContext
from nvflare.app_common.abstract.statistics_spec import Bin, Histogram
from nvflare.app_common.app_constant import StatisticsConstants as StC
from nvflare.app_common.statistics.min_count_cleanser import MinCountCleanser

#: the statistics a withheld feature keeps (see the module docstring)
KEPT_WHEN_WITHHELD = frozenset({StC.STATS_FAILURE_COUNT})
#: the first round's rank groups of the numeric features (see ``fl_tasks.stats.bins``)
RANK_GROUPS = "rank_groups"


def indicator_groups(feature_spec: Mapping[str, Any]) -> dict[str, list[str]]:
    """Return the 0/1 indicator features of a ``data.features`` spec, grouped by source column.

    A binary feature is a group of one; a categorical feature's group is one indicator per category,
    named ``column=category`` as ``fl_tasks.data.encode_features`` names them.

    :param feature_spec: the ``data.features`` section of the job config
    """
    groups = {column: [column] for column in feature_spec.get("binary", {})}
    for column, categories in feature_spec.get("categorical", {}).items():
        groups[column] = [f"{column}={category}" for category in categories]
    return groups


def small_bin(bins: Sequence[Any], min_count: float) -> bool:
    """Return True when a histogram has a bin holding at least one but fewer than ``min_count`` records.

    :param bins: NVFlare ``Bin`` objects, or ``[low, high, count]`` triples
    :param min_count: the minimum count
    """
    counts = [b.sample_count if hasattr(b, "sample_count") else b[2] for b in bins]
    return any(0 < count < min_count for count in counts)


def max_bins(count: float, max_bins_percent: float) -> int:
    """Return the most bins NVFlare's ``HistogramBinsCleanser`` lets a histogram of ``count`` records have.

    :param count: the feature's records at the site (``count - failure_count``)
    :param max_bins_percent: ``privacy.max_bins_percent``
    """
    return round(count * max_bins_percent / 100) - 1


def coarsen(bins: Sequence[Any], min_count: float, most: int, keep: frozenset[float] = frozenset()) -> list[Bin]:
    """Merge neighbouring bins until none holds 1 to ``min_count - 1`` records and at most ``most`` remain.

    The smallest such bin joins a neighbour: across a cut not in ``keep`` if it can, else a neighbour
    holding records, else the smaller one. Then, while there are more than ``most`` bins, the neighbours
    with the fewest records together merge, again across cuts not in ``keep`` first. A single bin is
    returned as it is: the caller withholds what is still not releasable (:func:`small_bin`).

    :param bins: NVFlare ``Bin`` objects, or ``[low, high, count]`` triples, in order
    :param min_count: the minimum count
    :param most: the most bins to keep (at least one is always returned for a non-empty histogram)
    :param keep: the cuts (bin edges) to keep if possible
    """
    parts = [[*b[:2], b[2]] for b in bins]

    def merge(cut: int) -> None:
        parts[cut:cut + 2] = [[parts[cut][0], parts[cut + 1][1], parts[cut][2] + parts[cut + 1][2]]]

    def kept(cut: int) -> bool:
        return parts[cut][1] in keep

    while len(parts) > 1:
        small = [i for i, part in enumerate(parts) if 0 < part[2] < min_count]
        if not small:
            break
        i = min(small, key=lambda j: parts[j][2])
        cuts = [cut for cut in (i - 1, i) if 0 <= cut < len(parts) - 1]
        neighbour = {cut: parts[cut if cut < i else cut + 1][2] for cut in cuts}
        merge(min(cuts, key=lambda cut: (kept(cut), neighbour[cut] == 0, neighbour[cut])))
    while len(parts) > max(most, 1):
        merge(min(range(len(parts) - 1), key=lambda cut: (kept(cut), parts[cut][2] + parts[cut + 1][2])))
    return [Bin(float(low), float(high), count) for low, high, count in parts]


class SmallCountCleanser(MinCountCleanser):
    """Withhold or merge a site's statistics that rest on fewer than ``min_count`` records (see the module docstring).

    :param min_count: the minimum number of records (``privacy.min_count``)
    :param indicator_groups: source column -> its 0/1 indicator features (see :func:`indicator_groups`)
    :param generator_id: the component id of the site's ``Statistics`` generator, asked for category
        counts (the second statistics round carries no sums) and for the cuts planned for every site
    :param max_bins_percent: ``privacy.max_bins_percent``, NVFlare's bin limit that merging respects
    """

    def __init__(
        self, min_count: int, indicator_groups: dict[str, list[str]], generator_id: str,
        max_bins_percent: float = 100.0,
    ) -> None:
        super().__init__(min_count=min_count)
        # NVFlare exports a component by reading back its constructor arguments from attributes
        self.indicator_groups = indicator_groups
        self.generator_id = generator_id
        self.max_bins_percent = max_bins_percent
        self._generator: Any = None

    def handle_event(self, event_type: str, fl_ctx: FLContext) -> None:
        if event_type == EventType.START_RUN:
            self._generator = fl_ctx.get_engine().get_component(self.generator_id)
            if self._generator is None:
                raise ValueError(f"no statistics generator component {self.generator_id!r}")

    def _category_withheld(self, dataset: str, counts: Mapping[str, float]) -> set[str]:
        """Return the indicator features withheld by the category rule (whole groups)."""
        withheld: set[str] = set()
        for members in self.indicator_groups.values():
            for feature in members:
                if feature not in counts:
                    continue
                positives = self._generator.sum(dataset, feature)
                if positives < self.min_count or counts[feature] - positives < self.min_count:
                    withheld.update(members)
                    self.logger.info(f"category rule: withholding {members} of dataset {dataset}")
                    break
        return withheld

    def effective_counts(self, statistics: Mapping[str, Any], dataset: str) -> dict[str, float]:
        """Return each feature's records (``count - failure_count``) in ``dataset``.

        :param statistics: the site's statistics, statistic -> dataset -> feature -> value
        :param dataset: the dataset name
        """
        counts = statistics[StC.STATS_COUNT][dataset]
        failures = statistics.get(StC.STATS_FAILURE_COUNT, {}).get(dataset, {})
        return {feature: count - failures.get(feature, 0) for feature, count in counts.items()}

    def withheld_features(self, statistics: Mapping[str, Any], dataset: str) -> set[str]:
        """Return the features of ``dataset`` whose every statistic (but the failure count) is withheld.

        :param statistics: the site's statistics, statistic -> dataset -> feature -> value
        :param dataset: the dataset name
        """
        effective = self.effective_counts(statistics, dataset)
        too_few = {feature for feature, count in effective.items() if count < self.min_count}
        return too_few | self._category_withheld(dataset, effective)

    def _release_histograms(self, statistics: dict, dataset: str, client_name: str) -> bool:
        """Merge each histogram's small bins; withhold one that is still not releasable (rule 3)."""
        histograms = statistics.get(StC.STATS_HISTOGRAM, {}).get(dataset, {})
        counts = self.effective_counts(statistics, dataset)
        modified = False
        for feature, histogram in list(histograms.items()):
            most = max_bins(counts.get(feature, 0), self.max_bins_percent)
            keep = frozenset(self._generator.shared_cuts(dataset, feature))
            bins = coarsen(histogram.bins, self.min_count, most, keep)
            if not bins or small_bin(bins, self.min_count) or len(bins) > most:  # the final guard
                del histograms[feature]
                modified = True
                self.logger.info(f"histogram rule: withholding the histogram of {feature} for client {client_name}")
            elif len(bins) != len(histogram.bins):
                histograms[feature] = Histogram(histogram.hist_type, bins, histogram.hist_name)
                modified = True
                self.logger.info(f"histogram rule: merged the {len(histogram.bins)} bins of {feature} into "
                                 f"{len(bins)} for client {client_name}")
        return modified

    def _release_rank_groups(self, statistics: dict, dataset: str) -> bool:
        """Withhold a feature's rank groups if one holds fewer than ``min_count`` records (rule 4)."""
        groups = statistics.get(RANK_GROUPS, {}).get(dataset, {})
        small = [feature for feature, parts in groups.items() if any(size < self.min_count for _, size in parts)]
        for feature in small:
            del groups[feature]
        return bool(small)

    def apply(self, statistics: dict, client_name: str) -> tuple[dict, bool]:
        modified = False
        if StC.STATS_COUNT not in statistics:
            return statistics, modified
        for dataset in list(statistics[StC.STATS_COUNT]):
            withheld = self.withheld_features(statistics, dataset)
            for statistic, per_dataset in statistics.items():
                if statistic in KEPT_WHEN_WITHHELD or dataset not in per_dataset:
                    continue
                for feature in withheld & set(per_dataset[dataset]):
                    del per_dataset[dataset][feature]
                    modified = True
            modified |= self._release_histograms(statistics, dataset, client_name)
            modified |= self._release_rank_groups(statistics, dataset)
            if withheld:
                self.logger.info(f"withholding {len(withheld)} features of dataset {dataset} for client "
                                 f"{client_name}: fewer than {self.min_count} records or a small category")
        return statistics, modified
