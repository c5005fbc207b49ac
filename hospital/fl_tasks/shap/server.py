"""The research centre's side of federated SHAP: send the model, count every site, aggregate."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from nvflare.app_common.abstract.fl_model import FLModel

from fl_tasks.controllers import AllSitesController
from fl_tasks.shap.estimate import Estimate, combine

#: per-site and global importances, relative to the job's run folder
RESULT_FILE = "flareflow/shap_result.json"


def _scope(estimate: Estimate) -> dict[str, Any]:
    return {"n_samples": estimate.n_samples, "rows": estimate.rows, "mean_abs_shap": estimate.mean.tolist(),
            "se": estimate.se.tolist()}


class FederatedShap(AllSitesController):
    """Ask every site for its mean |SHAP| estimate; weight sites by their full row counts.

    The global mean |SHAP| estimates the mean over every row of every site, ``se`` its standard error
    from the sites' sampling (:mod:`fl_tasks.shap.estimate` states the method).

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
        estimates = {
            site: Estimate(np.asarray(r.metrics["mean_abs_shap"], dtype=float),
                           np.asarray(r.metrics["variance"], dtype=float),
                           int(r.meta["n_samples"]), int(r.meta["rows"]))
            for site, r in results.items()
        }
        self.write_result({
            "features": self.features,
            "sites": {site: {**_scope(estimates[site]), "compute_s": float(results[site].meta["compute_s"])}
                      for site in self.sites},
            "global": _scope(combine([estimates[s] for s in self.sites])),
            # how long the server waited for every site, next to each site's own compute time
            "wait_s": time.perf_counter() - started,
        })
