"""The site's statistics executor: NVFlare's, plus rank groups in round 1 and shared bins in round 2.

See ``fl_tasks.stats.bins`` for the design. What the site sends still passes its privacy filter
(``fl_tasks.stats.privacy``) on the way out.
"""

from __future__ import annotations

from typing import Any

from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable
from nvflare.app_common.abstract.statistics_spec import Histogram, StatisticConfig
from nvflare.app_common.executors.statistics.statistics_executor import StatisticsExecutor
from nvflare.app_common.executors.statistics.statistics_task_handler import StatisticsTaskHandler

from fl_tasks.stats.privacy import RANK_GROUPS

#: the round-2 task input: dataset -> feature -> {"edges": [...], "cuts": [...]} (see ``fl_tasks.stats.bins``)
SHARED_BINS = "flareflow_shared_bins"


class SharedBinsTaskHandler(StatisticsTaskHandler):
    """NVFlare's statistics task handler, which also sends rank groups and bins on the shared edges."""

    def statistic_functions(self) -> dict:
        return {**super().statistic_functions(), RANK_GROUPS: self.get_rank_groups}

    def get_rank_groups(
        self, dataset_name: str, feature_name: str, statistic_configs: StatisticConfig, inputs: Shareable,
        fl_ctx: FLContext,
    ) -> list[list[float]] | None:
        """Return a numeric feature's rank groups, their means rounded like every statistic (None for others)."""
        groups = self.stats_generator.rank_groups(dataset_name, feature_name)
        if groups is None:
            return None
        return [[round(mean, self.precision), size] for mean, size in groups]

    def _populate_result_statistics(
        self, statistics_result: dict, ds_features: Any, tm: StatisticConfig, shareable: Shareable,
        fl_ctx: FLContext, fn: Any,
    ) -> None:
        super()._populate_result_statistics(statistics_result, ds_features, tm, shareable, fl_ctx, fn)
        if tm.name == RANK_GROUPS:  # only the numeric features have rank groups
            for per_feature in statistics_result[tm.name].values():
                for feature in [f for f, groups in per_feature.items() if groups is None]:
                    del per_feature[feature]

    def get_histogram(
        self, dataset_name: str, feature_name: str, statistic_configs: StatisticConfig, inputs: Shareable,
        fl_ctx: FLContext,
    ) -> Histogram:
        plan = inputs.get(SHARED_BINS, {}).get(dataset_name, {}).get(feature_name)
        if plan is None:  # not a numeric feature: NVFlare's equal-width bins over the noised range
            return super().get_histogram(dataset_name, feature_name, statistic_configs, inputs, fl_ctx)
        return self.stats_generator.histogram_on_edges(dataset_name, feature_name, plan["edges"], plan["cuts"])


class SharedBinsExecutor(StatisticsExecutor):
    """NVFlare's statistics executor with :class:`SharedBinsTaskHandler`.

    :param generator_id: the component id of the site's statistics generator
    :param precision: decimals the site rounds statistics to
    """

    def __init__(self, generator_id: str, precision: int = 4) -> None:
        super().__init__(generator_id=generator_id, precision=precision)

    def get_task_handler(self, fl_ctx: FLContext) -> SharedBinsTaskHandler:
        handler = SharedBinsTaskHandler(self.generator_id, self.precision)
        handler.initialize(fl_ctx)
        return handler
