"""Build the federated statistics job: NVFlare's stats workflow, all configured sites required.

NVFlare's ``StatsJob`` leaves ``min_clients`` at 1 and the controller's result wait at 10 s; here the
job meta and the controller both require every participating site, within the configured timeout.
Both the sites and the server round to ``stats.precision`` decimals (NVFlare's default is 4). Each site
filters its statistics through flareflow's release rules (``fl_tasks.stats.privacy``), then NVFlare's
noisy min/max and histogram bin limit. Numeric features are binned on shared edges placed at the
federation's quantiles, in the same two rounds (``fl_tasks.stats.bins``): the controller and the sites'
executor are NVFlare's, extended for that (``fl_tasks.stats.controller``, ``fl_tasks.stats.executor``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nvflare import FilterType
from nvflare.app_common.filters.statistics_privacy_filter import StatisticsPrivacyFilter
from nvflare.app_common.statistics.histogram_bins_cleanser import HistogramBinsCleanser
from nvflare.app_common.statistics.min_max_cleanser import AddNoiseToMinMax
from nvflare.app_common.workflows.statistics_controller import StatisticsController
from nvflare.job_config.stats_job import StatsJob

from fl_tasks.jobs import require_sites
from fl_tasks.stats.client import SiteStatistics
from fl_tasks.stats.controller import SharedBinsController
from fl_tasks.stats.executor import SharedBinsExecutor
from fl_tasks.stats.privacy import SmallCountCleanser, indicator_groups
from fl_tasks.stats.result import result_sites

__all__ = ["RESULT_FILE", "build_job", "result_sites"]

#: where the server writes the aggregated statistics, relative to the job's run folder
RESULT_FILE = "statistics/feature_stats.json"


class RequiredSitesStatsJob(StatsJob):
    """A stats job whose meta and controller wait for every site it is deployed to.

    :param sites: the participating sites
    :param result_wait_timeout: seconds the controller waits for each site's result
    :param precision: decimals the sites and the server round statistics to
    :param indicator_groups: the 0/1 indicator features by source column, for the category rule
    """

    def __init__(
        self, *, sites: Sequence[str], result_wait_timeout: float, precision: int,
        indicator_groups: Mapping[str, Sequence[str]], **kwargs: Any,
    ) -> None:
        self.sites = list(sites)
        self.result_wait_timeout = result_wait_timeout
        self.precision = precision
        self.indicator_groups = {column: list(members) for column, members in indicator_groups.items()}
        super().__init__(**kwargs)
        require_sites(self, self.sites)
        self.setup_clients(self.sites)

    def get_stats_controller(self) -> StatisticsController:
        return SharedBinsController(
            statistic_configs=self.statistic_configs, writer_id=self.writer_id, min_count=self.min_count,
            min_clients=len(self.sites), result_wait_timeout=int(self.result_wait_timeout),
            wait_time_after_min_received=0, precision=self.precision, enable_pre_run_task=False,
        )

    def setup_clients(self, sites: Sequence[str]) -> None:
        for site in sites:
            generator_id = self.to(self.stats_generator, site, id=self.stats_generator_id_prefix)
            executor = SharedBinsExecutor(generator_id=generator_id, precision=self.precision)
            self.to(executor, site, tasks=["fed_stats_pre_run", "fed_stats"])
            self._add_release_filters(site, generator_id)

    def _add_release_filters(self, site: str, generator_id: str) -> None:
        cleansers = [
            (SmallCountCleanser(min_count=self.min_count, indicator_groups=self.indicator_groups,
                                generator_id=generator_id, max_bins_percent=self.max_bins_percent),
             "small_count_cleanser"),
            (AddNoiseToMinMax(min_noise_level=self.min_noise_level, max_noise_level=self.max_noise_level),
             "min_max_noise_cleanser"),
            (HistogramBinsCleanser(max_bins_percent=self.max_bins_percent), "hist_bins_cleanser"),
        ]
        ids = [self.to(cleanser, site, id=name) for cleanser, name in cleansers]
        self.to(StatisticsPrivacyFilter(result_cleanser_ids=ids), site, filter_type=FilterType.TASK_RESULT,
                tasks=["fed_stats"])


def build_job(
    *, name: str, sites: Sequence[str], config: Mapping[str, Any], until: str, **_: Any
) -> tuple[RequiredSitesStatsJob, None]:
    """Define the statistics job for one run (its components need no client settings file).

    :param name: the job name
    :param sites: the sites that take part
    :param config: the merged ``stats`` job config
    :param until: ISO date; sites use records admitted before it
    """
    data, privacy = config["data"], config["privacy"]
    groups = indicator_groups(data["features"])
    # failure_count (always 0 here) names every site in the result, even one whose statistics are all
    # withheld (see fl_tasks.stats.privacy); histogram_bins is the number of shared bins a numeric
    # feature starts from (see fl_tasks.stats.bins); a 0/1 indicator's histogram is its two counts
    statistic_configs = {
        "count": {}, "failure_count": {}, "sum": {}, "mean": {}, "stddev": {},
        "histogram": {"*": {"bins": config["stats"]["histogram_bins"]},
                      **{feature: {"bins": 2} for members in groups.values() for feature in members}},
    }
    generator = SiteStatistics(data=dict(data), until=until, min_count=privacy["min_count"])
    job = RequiredSitesStatsJob(
        name=name, sites=sites, result_wait_timeout=config["federation"]["task_timeout_s"],
        precision=config["stats"]["precision"], indicator_groups=groups,
        statistic_configs=statistic_configs, stats_generator=generator, output_path=RESULT_FILE,
        min_count=privacy["min_count"], min_noise_level=privacy["min_noise_level"],
        max_noise_level=privacy["max_noise_level"], max_bins_percent=privacy["max_bins_percent"],
    )
    return job, None
