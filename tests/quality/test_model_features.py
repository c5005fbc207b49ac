"""The training clients train on the features in model order, whatever order their settings file has.

The clients read their settings from a JSON file written with sorted keys, which reorders the
``binary`` mapping (``exang, fbs, sex`` instead of ``sex, fbs, exang``). The server, the registry and
SHAP name the model's weights in config order, so a client deriving the column order from that
mapping would train ``sex``'s weight on ``exang`` and vice versa.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

import fl_tasks.train.job as train_job
from fl_tasks.contract import Contract
from fl_tasks.data import SITE_DATA_DIR, encode_features, load_site_data, standardize
from fl_tasks.jobs import CLIENT_CONFIG_FILE, export_job
from fl_tasks.stats.client import DATASET
from fl_tasks.stats.result import GLOBAL_KEY
from fl_tasks.train.client import model_inputs
from flareflow.config import load_pipeline_config
from flareflow.local.sites import split_by_site
from flareflow.local.stack import demo_source

PROJECT = Path(__file__).resolve().parents[2]
UNTIL = "2026-11-01"


def test_clients_order_the_columns_as_the_model_names_them(tmp_path: Path) -> None:
    config = load_pipeline_config(PROJECT / "configs").job("train").model_dump(mode="json")
    contract = Contract.from_config(config["data"])
    model_order = contract.features.columns
    # distinct global statistics per feature, so a swapped column cannot go unnoticed
    means = {feature: 0.1 * i for i, feature in enumerate(model_order)}
    stddevs = {feature: 1.0 + 0.5 * i for i, feature in enumerate(model_order)}
    stats = {feature: {"mean": {GLOBAL_KEY: {DATASET: means[feature]}},
                       "stddev": {GLOBAL_KEY: {DATASET: stddevs[feature]}}} for feature in model_order}
    (tmp_path / "stats.json").write_text(json.dumps(stats))
    workspace = tmp_path / "cleveland"
    data_file = workspace / SITE_DATA_DIR / config["data"]["file_name"]
    data_file.parent.mkdir(parents=True)
    sites = split_by_site(demo_source(), config["federation"]["sites"])
    sites["cleveland"].head(60).to_csv(data_file, index=False)

    job_folder = export_job(train_job, tmp_path / "export", "train", ["cleveland"],
                            {"config": config, "until": UNTIL, "stats_result": str(tmp_path / "stats.json")})
    settings = json.loads((job_folder / "app_cleveland" / "custom" / CLIENT_CONFIG_FILE).read_text())
    assert settings["features"] == model_order
    x, _ = model_inputs(workspace, settings)

    frame = load_site_data(data_file, contract, until=pd.Timestamp(UNTIL).date())
    expected = standardize(encode_features(frame, contract.features), means, stddevs)  # columns in model order
    assert x.shape == expected.shape
    np.testing.assert_array_equal(x, expected)
    for name in ("sex", "exang"):  # the columns a sorted settings file used to swap
        column = model_order.index(name)
        np.testing.assert_array_equal(x[:, column], expected[:, column])
