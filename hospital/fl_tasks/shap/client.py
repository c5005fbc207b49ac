"""A hospital's side of federated SHAP (NVFlare Client API): explain the global model locally.

The site explains a bounded, seeded sample of its rows (``shap.max_rows``, stratified by label; every
row when null) and sends only aggregates per feature: its estimate of the mean |SHAP| over all its rows,
that estimate's sampling variance, and how many rows it explained out of how many it holds.
"""

from __future__ import annotations

import time

import numpy as np
import nvflare.client as flare
from nvflare.app_common.abstract.fl_model import FLModel

from fl_tasks.jobs import read_client_config, site_workspace
from fl_tasks.shap.estimate import site_estimate
from fl_tasks.shap.explain import abs_shap
from fl_tasks.shap.sample import load_sample


def main() -> None:
    flare.init()
    workspace = site_workspace()
    settings = read_client_config(workspace, flare.get_job_id(), flare.get_site_name())
    options = settings["shap"]
    sample = load_sample(workspace, settings)

    while flare.is_running():
        incoming = flare.receive()
        if incoming is None:
            break
        params = incoming.params
        started = time.perf_counter()
        values = abs_shap(
            params["model"], np.asarray(params["background"], dtype=float), sample.x,
            explainer=options["explainer"], samples=options["samples"], seed=settings["seed"],
        )
        estimate = site_estimate(values, sample.labels, sample.strata)
        del values
        flare.send(FLModel(
            metrics={"mean_abs_shap": estimate.mean.tolist(), "variance": estimate.variance.tolist()},
            meta={"n_samples": estimate.n_samples, "rows": estimate.rows,
                  "compute_s": time.perf_counter() - started},
        ))


if __name__ == "__main__":
    main()
