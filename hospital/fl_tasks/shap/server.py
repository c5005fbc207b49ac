"""The research centre's side of federated SHAP: send the model, count every site, aggregate."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from nvflare.app_common.abstract.fl_model import FLModel

from fl_tasks.controllers import AllSitesController

#: per-site and global importances, relative to the job's run folder
RESULT_FILE = "flareflow/shap_result.json"


class FederatedShap(AllSitesController):
    """Ask every site for the mean |SHAP| of the global model; weight sites by rows explained.

    :param model: the global model weights (``coef``, ``intercept``)
    :param background: the shared background rows, built from federated statistics
    :param features: the feature names, in model order
    """

    def __init__(
        self, *, sites: Sequence[str], task_timeout_s: float, model: Mapping[str, Sequence[float]],
        background: Sequence[Sequence[float]], features: Sequence[str], result_file: str = RESULT_FILE,
    ) -> None:
        super().__init__(sites=sites, task_timeout_s=task_timeout_s, result_file=result_file)
        self.model = dict(model)
        self.background = [list(row) for row in background]
        self.features = list(features)

    def run(self) -> None:
        started = time.perf_counter()
        results = self.ask_all("explain", FLModel(params={"model": self.model, "background": self.background}))
        per_site: dict[str, Any] = {
            site: {"n_samples": int(r.meta["n_samples"]), "mean_abs_shap": list(r.metrics["mean_abs_shap"]),
                   "compute_s": float(r.meta["compute_s"])}
            for site, r in results.items()
        }
        weights = np.array([per_site[s]["n_samples"] for s in self.sites], dtype=float)
        values = np.array([per_site[s]["mean_abs_shap"] for s in self.sites], dtype=float)
        self.write_result({
            "features": self.features,
            "sites": per_site,
            "global": {"n_samples": int(weights.sum()),
                       "mean_abs_shap": np.average(values, axis=0, weights=weights).tolist()},
            # how long the server waited for every site, next to each site's own compute time
            "wait_s": time.perf_counter() - started,
        })
