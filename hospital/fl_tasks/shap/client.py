"""A hospital's side of federated SHAP (NVFlare Client API): explain the global model locally.

Only the mean |SHAP| per feature and the number of rows explained leave the site.
"""

from __future__ import annotations

import time

import numpy as np
import nvflare.client as flare
from nvflare.app_common.abstract.fl_model import FLModel

from fl_tasks.data import load_model_inputs
from fl_tasks.jobs import read_client_config, site_workspace
from fl_tasks.shap.explain import mean_abs_shap


def main() -> None:
    flare.init()
    workspace = site_workspace()
    settings = read_client_config(workspace, flare.get_job_id(), flare.get_site_name())
    options = settings["shap"]
    x, _ = load_model_inputs(workspace, settings)
    rows = x[: options["max_rows"]] if options["max_rows"] else x

    while flare.is_running():
        incoming = flare.receive()
        if incoming is None:
            break
        params = incoming.params
        started = time.perf_counter()
        importance = mean_abs_shap(
            params["model"], np.asarray(params["background"], dtype=float), rows,
            explainer=options["explainer"], samples=options["samples"], seed=settings["seed"],
        )
        flare.send(FLModel(metrics={"mean_abs_shap": importance.tolist()},
                           meta={"n_samples": len(rows), "compute_s": time.perf_counter() - started}))


if __name__ == "__main__":
    main()
