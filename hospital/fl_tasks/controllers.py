"""The server side shared by the training and SHAP workflows: ask every site, count every site."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nvflare.app_common.abstract.fl_model import FLModel
from nvflare.app_common.workflows.model_controller import ModelController

from fl_tasks.jobs import FAILURE_FILE


class SiteMissing(RuntimeError):
    """A site sent no result for a task within the timeout."""


class AllSitesController(ModelController):
    """A workflow whose every task must be answered by every participating site.

    NVFlare's ``send_model_and_wait`` returns whatever arrived when its timeout passes; this
    controller treats a missing site as a failure of the job, never as a smaller aggregate.

    :param sites: the participating sites
    :param task_timeout_s: how long to wait for every site's result of one task
    :param result_file: where to write the workflow's result, relative to the job's run folder
    """

    def __init__(self, *, sites: Sequence[str], task_timeout_s: float, result_file: str) -> None:
        super().__init__(persistor_id="")
        self.sites = list(sites)
        self.task_timeout_s = task_timeout_s
        self.result_file = result_file

    def ask_all(self, task_name: str, data: FLModel) -> dict[str, FLModel]:
        """Send a task to every site and return each site's result, by site name.

        :param task_name: the task the client scripts look for
        :param data: the model or payload to send
        """
        results = self.send_model_and_wait(
            task_name=task_name, data=data, targets=self.sites, min_responses=len(self.sites),
            timeout=int(self.task_timeout_s),
        )
        by_site = {result.meta.get("client_name"): result for result in results}
        missing = [site for site in self.sites if site not in by_site]
        if missing:
            reason = (f"task {task_name!r}: no result from site(s) {', '.join(missing)} "
                      f"within {self.task_timeout_s:.0f}s")
            self.fail(reason, missing)
        return {site: by_site[site] for site in self.sites}

    def fail(self, reason: str, sites: Sequence[str] = ()) -> None:
        """Record why the workflow gives up, abort the job and stop the workflow."""
        self._write(FAILURE_FILE, {"reason": reason, "sites": list(sites)})
        self.error(reason)
        self.panic(reason)
        raise SiteMissing(reason)

    def write_result(self, result: dict[str, Any]) -> None:
        """Write the workflow's result into the job's run folder (downloaded with the job)."""
        self._write(self.result_file, result)

    def _write(self, relative: str, content: dict[str, Any]) -> None:
        path = Path(self.get_run_dir()) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(content, indent=1))
        os.replace(tmp, path)


def weighted_mean(values: Sequence[float], weights: Sequence[float]) -> float:
    """Return the mean of ``values`` weighted by ``weights``."""
    total = float(sum(weights))
    return float(sum(v * w for v, w in zip(values, weights, strict=True)) / total)
