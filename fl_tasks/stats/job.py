"""Build the federated statistics job: NVFlare's stats workflow, all configured sites required.

NVFlare's ``StatsJob`` leaves ``min_clients`` at 1 and the controller's result wait at 10 s; here the
job meta and the controller both require every participating site, within the configured timeout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nvflare.app_common.workflows.statistics_controller import StatisticsController
from nvflare.job_config.stats_job import StatsJob

from fl_tasks.jobs import require_sites
from fl_tasks.stats.client import SiteStatistics
from fl_tasks.stats.result import result_sites

__all__ = ["RESULT_FILE", "build_job", "result_sites"]

#: where the server writes the aggregated statistics, relative to the job's run folder
RESULT_FILE = "statistics/feature_stats.json"


class RequiredSitesStatsJob(StatsJob):
    """A stats job whose meta and controller wait for every site it is deployed to.

    :param sites: the participating sites
    :param result_wait_timeout: seconds the controller waits for each site's result
    """

    def __init__(self, *, sites: Sequence[str], result_wait_timeout: float, **kwargs: Any) -> None:
        self.sites = list(sites)
        self.result_wait_timeout = result_wait_timeout
        super().__init__(**kwargs)
        require_sites(self, self.sites)
        self.setup_clients(self.sites)

    def get_stats_controller(self) -> StatisticsController:
        return StatisticsController(
            statistic_configs=self.statistic_configs, writer_id=self.writer_id,
            min_clients=len(self.sites), result_wait_timeout=int(self.result_wait_timeout),
            wait_time_after_min_received=0, enable_pre_run_task=False,
        )


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
    statistic_configs = {
        "count": {}, "sum": {}, "mean": {}, "stddev": {},
        "histogram": {"*": {"bins": config["stats"]["histogram_bins"]}},
    }
    generator = SiteStatistics(feature_spec=data["features"], file_name=data["file_name"], until=until,
                               window_months=data["window_months"])
    job = RequiredSitesStatsJob(
        name=name, sites=sites, result_wait_timeout=config["federation"]["task_timeout_s"],
        statistic_configs=statistic_configs, stats_generator=generator, output_path=RESULT_FILE,
        min_count=privacy["min_count"], min_noise_level=privacy["min_noise_level"],
        max_noise_level=privacy["max_noise_level"], max_bins_percent=privacy["max_bins_percent"],
    )
    return job, None
