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
3. **Histograms.** A histogram with a non-empty bin holding fewer than ``k`` records is withheld (the
   feature's other statistics stay). This is the simplest correct rule: merging small bins would give
   the sites different bins, which NVFlare's server cannot add up, and zeroing them would report counts
   that are not true and, with the count released, reveal their total.

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
from nvflare.app_common.app_constant import StatisticsConstants as StC
from nvflare.app_common.statistics.min_count_cleanser import MinCountCleanser

#: the statistics a withheld feature keeps (see the module docstring)
KEPT_WHEN_WITHHELD = frozenset({StC.STATS_FAILURE_COUNT})


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


class SmallCountCleanser(MinCountCleanser):
    """Withhold a site's statistics that rest on fewer than ``min_count`` records (see the module docstring).

    :param min_count: the minimum number of records (``privacy.min_count``)
    :param indicator_groups: source column -> its 0/1 indicator features (see :func:`indicator_groups`)
    :param generator_id: the component id of the site's ``Statistics`` generator, asked for category
        counts (the second statistics round carries no sums)
    """

    def __init__(self, min_count: int, indicator_groups: dict[str, list[str]], generator_id: str) -> None:
        super().__init__(min_count=min_count)
        # NVFlare exports a component by reading back its constructor arguments from attributes
        self.indicator_groups = indicator_groups
        self.generator_id = generator_id
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

    def withheld_features(self, statistics: Mapping[str, Any], dataset: str) -> set[str]:
        """Return the features of ``dataset`` whose every statistic (but the failure count) is withheld.

        :param statistics: the site's statistics, statistic -> dataset -> feature -> value
        :param dataset: the dataset name
        """
        counts = statistics[StC.STATS_COUNT][dataset]
        failures = statistics.get(StC.STATS_FAILURE_COUNT, {}).get(dataset, {})
        effective = {feature: count - failures.get(feature, 0) for feature, count in counts.items()}
        too_few = {feature for feature, count in effective.items() if count < self.min_count}
        return too_few | self._category_withheld(dataset, effective)

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
            histograms = statistics.get(StC.STATS_HISTOGRAM, {}).get(dataset, {})
            for feature in [f for f, hist in histograms.items() if small_bin(hist.bins, self.min_count)]:
                del histograms[feature]
                modified = True
                self.logger.info(f"histogram rule: withholding the histogram of {feature} for client {client_name}")
            if withheld:
                self.logger.info(f"withholding {len(withheld)} features of dataset {dataset} for client "
                                 f"{client_name}: fewer than {self.min_count} records or a small category")
        return statistics, modified
