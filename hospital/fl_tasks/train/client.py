"""A hospital's side of federated training (NVFlare Client API).

Each round: receive the global model, validate it on the local validation split, train the local
epochs from it, send the new weights with the training sample count (the FedAvg weight). At the end:
report the final global model's validation and test metrics. Only weights and metrics leave the site.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import nvflare.client as flare
from nvflare.app_common.abstract.fl_model import FLModel
from nvflare.client.tracking import MLflowWriter

from fl_tasks.contract import Contract
from fl_tasks.data import load_model_inputs, split_indices
from fl_tasks.jobs import read_client_config, site_workspace
from fl_tasks.train.model import evaluate, get_params, make_classifier, train_locally, with_params


def model_inputs(workspace: Path, settings: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Return this site's standardized features, their columns in the job's model order, and labels.

    The columns follow ``settings["features"]`` (the order the server, the registry and the stats
    use), not the order of the feature mappings in the settings file, which JSON round trips may
    change (e.g. a file written with sorted keys puts ``exang`` before ``sex``).
    """
    x, y = load_model_inputs(workspace, settings)
    encoded = Contract.from_config(settings["data"]).features.columns
    missing = sorted(set(settings["features"]) ^ set(encoded))
    if missing:
        raise ValueError(f"the job's model features and this site's encoded features differ: {missing}")
    return x[:, [encoded.index(feature) for feature in settings["features"]]], y


def main() -> None:
    flare.init()
    workspace = site_workspace()
    settings = read_client_config(workspace, flare.get_job_id(), flare.get_site_name())
    training, split = settings["training"], settings["data"]["split"]
    x, y = model_inputs(workspace, settings)
    train, val, test = split_indices(y, (split["train"], split["validation"], split["test"]), training["seed"])
    model = make_classifier(training)

    tracker = MLflowWriter()
    while flare.is_running():
        incoming = flare.receive()
        if incoming is None:
            break
        global_model = with_params(make_classifier(training), incoming.params)
        validation = evaluate(global_model, x[val], y[val])
        step = incoming.current_round or 0
        tracker.log_metrics({f"validation_{k}": v for k, v in validation.items()}, step=step)
        if flare.is_train():
            train_locally(model, incoming.params, x[train], y[train], seed=training["seed"] + step)
            flare.send(FLModel(params=get_params(model), metrics=validation,
                               meta={"n_train": len(train), "n_validation": len(val)}))
        else:  # the final evaluation of the global model
            tested = evaluate(global_model, x[test], y[test])
            tracker.log_metrics({f"test_{k}": v for k, v in tested.items()}, step=step)
            flare.send(FLModel(metrics={"validation": validation, "test": tested},
                               meta={"n_validation": len(val), "n_test": len(test)}))


if __name__ == "__main__":
    main()
