"""The server side of federated statistics: NVFlare's workflow, with shared bins for numeric features.

Between the two rounds the controller turns the sites' rank groups and noised ranges into each numeric
feature's shared edges and planned cuts (``fl_tasks.stats.bins``) and sends them with round 2. At the
end it replaces NVFlare's global histograms (``accumulate_hists`` adds up only the bins that match the
first site's, and silently drops the rest) with :func:`fl_tasks.stats.bins.common_bins`, and writes
beside each global histogram the sites it covers.
"""

from __future__ import annotations

from typing import Any

from nvflare.apis.shareable import Shareable
from nvflare.app_common.abstract.statistics_spec import Bin, Histogram, HistogramType, StatisticConfig
from nvflare.app_common.app_constant import StatisticsConstants as StC
from nvflare.app_common.workflows.statistics_controller import StatisticsController
from nvflare.fuel.utils import fobs

from fl_tasks.stats.bins import SiteSummary, common_bins, plan_shared_cuts, shared_edges
from fl_tasks.stats.executor import SHARED_BINS
from fl_tasks.stats.privacy import RANK_GROUPS
from fl_tasks.stats.result import HISTOGRAM_SITES


class SharedBinsController(StatisticsController):
    """NVFlare's statistics controller, with shared bins for the numeric features (see the module docstring).

    :param statistic_configs: NVFlare's statistic configs (``histogram`` gives the number of shared bins)
    :param writer_id: the component id of the result writer
    :param min_count: ``privacy.min_count``, which the planned cuts leave every site room for
    :param wait_time_after_min_received: seconds to wait for more sites once ``min_clients`` answered
    :param result_wait_timeout: seconds to wait for each site's result
    :param precision: decimals of the written statistics
    :param min_clients: the sites that must answer
    :param enable_pre_run_task: whether NVFlare's pre-run handshake runs
    """

    def __init__(
        self, statistic_configs: dict[str, dict], writer_id: str, min_count: int = 1,
        wait_time_after_min_received: int = 1, result_wait_timeout: int = 10, precision: int = 4,
        min_clients: int | None = None, enable_pre_run_task: bool = True,
    ) -> None:
        super().__init__(
            statistic_configs=statistic_configs, writer_id=writer_id,
            wait_time_after_min_received=wait_time_after_min_received, result_wait_timeout=result_wait_timeout,
            precision=precision, min_clients=min_clients, enable_pre_run_task=enable_pre_run_task,
        )
        self.min_count = min_count

    def _prepare_inputs(self, statistic_task: str) -> Shareable:
        inputs = super()._prepare_inputs(statistic_task)
        if StC.STATS_HISTOGRAM not in self.statistic_configs:
            return inputs
        if statistic_task == StC.STATS_1st_STATISTICS:
            targets: list[StatisticConfig] = fobs.loads(inputs[StC.STATS_TARGET_STATISTICS])
            inputs[StC.STATS_TARGET_STATISTICS] = fobs.dumps([*targets, StatisticConfig(RANK_GROUPS, {})])
        elif statistic_task == StC.STATS_2nd_STATISTICS:
            inputs[SHARED_BINS] = self.shared_bins()
        return inputs

    def _bins(self, feature: str) -> int:
        config = self.statistic_configs[StC.STATS_HISTOGRAM]
        return int(config.get(feature, config.get("*", {}))[StC.STATS_BINS])

    def shared_bins(self) -> dict[str, dict[str, dict[str, list[float]]]]:
        """Return each numeric feature's shared edges and planned cuts, by dataset, from round 1's results."""
        groups = self.client_statistics.get(RANK_GROUPS, {})
        site_mins = self.client_statistics.get(StC.STATS_MIN, {})
        site_maxs = self.client_statistics.get(StC.STATS_MAX, {})
        plans: dict[str, dict[str, dict[str, list[float]]]] = {}
        for dataset, lows in self.global_statistics.get(StC.STATS_MIN, {}).items():
            for feature, low in lows.items():
                summaries = [
                    SiteSummary(per_ds[dataset][feature], site_mins[site][dataset][feature],
                                site_maxs[site][dataset][feature])
                    for site, per_ds in groups.items()
                    if feature in per_ds.get(dataset, {})
                    and feature in site_mins.get(site, {}).get(dataset, {})
                    and feature in site_maxs.get(site, {}).get(dataset, {})
                ]
                if not summaries:
                    continue
                high = self.global_statistics[StC.STATS_MAX][dataset][feature]
                edges = shared_edges(summaries, low, high, self._bins(feature))
                cuts = plan_shared_cuts(summaries, edges, self.min_count)
                plans.setdefault(dataset, {})[feature] = {"edges": edges, "cuts": cuts}
                self.logger.info(f"shared bins of {feature} from {len(summaries)} sites: edges {edges}, "
                                 f"planned cuts {cuts}")
        return plans

    def _global_histograms(self) -> dict[str, dict[str, list[str]]]:
        """Replace the global histograms by the sums over the sites' common cuts; return who each covers."""
        released = self.client_statistics.get(StC.STATS_HISTOGRAM, {})
        histograms: dict[str, dict[str, Histogram]] = {}
        covers: dict[str, dict[str, list[str]]] = {}
        for site_histograms in released.values():
            for dataset, per_feature in site_histograms.items():
                for feature in per_feature:
                    if feature in histograms.get(dataset, {}):
                        continue
                    per_site = {site: [tuple(b) for b in hists[dataset][feature].bins]
                                for site, hists in released.items() if feature in hists.get(dataset, {})}
                    try:
                        bins = common_bins(per_site)
                    except ValueError as error:
                        raise ValueError(f"histogram of {feature} in {dataset}: {error}") from error
                    histograms.setdefault(dataset, {})[feature] = Histogram(HistogramType.STANDARD, [
                        Bin(round(low, self.precision), round(high, self.precision), count)
                        for low, high, count in bins
                    ])
                    covers.setdefault(feature, {})[dataset] = sorted(per_site)
        self.global_statistics[StC.STATS_HISTOGRAM] = histograms
        return covers

    def _combine_all_statistics(self) -> dict[str, Any]:
        covers = self._global_histograms() if StC.STATS_HISTOGRAM in self.statistic_configs else {}
        result = super()._combine_all_statistics()
        for feature, per_dataset in covers.items():
            result[feature][HISTOGRAM_SITES] = {StC.GLOBAL: per_dataset}
        return result
