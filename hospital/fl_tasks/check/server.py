"""The research centre's side of the federated data check: ask every hospital for its report, keep them all."""

from __future__ import annotations

from collections.abc import Sequence

from nvflare.app_common.abstract.fl_model import FLModel

from fl_tasks.controllers import AllSitesController

#: every site's report, relative to the job's run folder
RESULT_FILE = "flareflow/data_check.json"


class FederatedDataCheck(AllSitesController):
    """Ask every site to check its file against the contract; write their reports, by site.

    Judging the reports is the research centre's step (``fl_tasks.check.rules``), after the job.
    """

    def __init__(self, *, sites: Sequence[str], task_timeout_s: float, result_file: str = RESULT_FILE) -> None:
        super().__init__(sites=sites, task_timeout_s=task_timeout_s, result_file=result_file)

    def run(self) -> None:
        results = self.ask_all("check", FLModel(params={}))
        self.write_result({"sites": {site: dict(result.metrics or {}) for site, result in results.items()}})
