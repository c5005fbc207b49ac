"""Federated SHAP equals SHAP on the pooled data (issue 4), on the real SHAP job.

The real statistics job, then the real SHAP job on the test stack's NVFlare POC, with a fixed model and
settings that make each row's explanation exact: the kernel explainer with ``2**M - 2`` samples (M
features) enumerates every coalition, so a row's SHAP values depend neither on the random state nor on
the other rows explained with it. A one-month window leaves the sites few and unequal rows (and
``max_rows`` cuts the larger ones), so the weighting by rows explained matters.

The reference is computed here, from each site's own rows read from its workspace exactly as its client
reads them (same settings file, same ``max_rows`` subset), with the same model, explainer and a
background rebuilt from the same statistics and seed. Pooling happens only here, in the test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from stats_jobs import UNTIL, StatsRun

import fl_tasks.shap.job as shap_job
import fl_tasks.stats.job as stats_job
from benchmarks._federation import Job, job_config, run_job
from fl_tasks.data import FeatureSpec, load_model_inputs
from fl_tasks.jobs import CLIENT_CONFIG_FILE
from fl_tasks.shap.background import background_rows
from fl_tasks.shap.explain import mean_abs_shap
from fl_tasks.stats.result import read_result
from flareflow.local.stack import Stack

N_FEATURES = 15
#: every coalition of the model's features is enumerated, nothing is sampled
OVERRIDES = {"data": {"window_months": 1},
             "shap": {"explainer": "kernel", "samples": 2**N_FEATURES - 2, "max_rows": 8}}
#: a fixed model, standing in for the training job's result
MODEL = {"coef": [0.45, 0.3, -0.25, -0.5, 0.55, 0.7, 0.15, 0.6, -0.35, -0.2, 0.05, 0.8, -0.1, 0.25, 0.4],
         "intercept": [0.2]}


@dataclass(frozen=True)
class ShapRun:
    """A completed federated SHAP job and what its sites were given."""

    config: dict[str, Any]
    stats_file: Path
    export: Path
    result: dict[str, Any]

    def settings(self, site: str) -> dict[str, Any]:
        """Return the settings the site's client script read (its copy of the exported job)."""
        return json.loads((self.export / f"app_{site}" / "custom" / CLIENT_CONFIG_FILE).read_text())

    def sent_background(self) -> np.ndarray:
        """Return the background the server sent to every site, from the job's server config."""
        server = json.loads((self.export / "app_server" / "config" / "config_fed_server.json").read_text())
        [shap] = [c for c in server["workflows"] if c["path"].endswith("FederatedShap")]
        return np.asarray(shap["args"]["background"], dtype=float)


@pytest.fixture(scope="module")
def shap_run(stack: Stack, production_run: StatsRun, tmp_path_factory: pytest.TempPathFactory) -> ShapRun:
    work = Path(tmp_path_factory.mktemp("shap"))
    (work / "training.json").write_text(json.dumps({"model": MODEL}))
    config = job_config(stack, "shap", OVERRIDES)
    stats_file = production_run.download / "workspace" / stats_job.RESULT_FILE
    job = Job(shap_job, "shap", {"config": config, "until": UNTIL, "stats_result": str(stats_file),
                                 "training_result": str(work / "training.json")})
    result_file = run_job(stack, job, work, timeout_s=900)
    return ShapRun(config, stats_file, work / "shap" / "job" / "shap", json.loads(result_file.read_text()))


@pytest.fixture(scope="module")
def background(shap_run: ShapRun) -> np.ndarray:
    """The background rebuilt from the statistics result and seed the job used."""
    features = FeatureSpec.from_dict(shap_run.config["data"]["features"]).columns
    return background_rows(read_result(shap_run.stats_file, features), shap_run.config["shap"]["background_size"],
                           seed=shap_run.config["training"]["seed"])


@pytest.fixture(scope="module")
def site_rows(stack: Stack, shap_run: ShapRun) -> dict[str, np.ndarray]:
    """Each site's explained rows, read from its own workspace as its client reads them."""
    rows = {}
    for site in stack.sites():
        settings = shap_run.settings(site)
        x, _ = load_model_inputs(stack.poc().site_workspace(site), settings)
        rows[site] = x[: settings["shap"]["max_rows"]]
    return rows


def _explain(shap_run: ShapRun, background: np.ndarray, rows: np.ndarray) -> np.ndarray:
    options = shap_run.config["shap"]
    return mean_abs_shap(MODEL, background, rows, explainer=options["explainer"], samples=options["samples"],
                         seed=shap_run.config["training"]["seed"])


def test_every_site_explained_with_the_background_built_from_the_statistics(
    shap_run: ShapRun, background: np.ndarray, site_rows: dict[str, np.ndarray]
) -> None:
    assert shap_run.result["features"] == FeatureSpec.from_dict(shap_run.config["data"]["features"]).columns
    assert background.shape == (shap_run.config["shap"]["background_size"], N_FEATURES)
    np.testing.assert_array_equal(shap_run.sent_background(), background)
    for site, rows in site_rows.items():
        assert shap_run.settings(site)["seed"] == shap_run.config["training"]["seed"]
        assert shap_run.result["sites"][site]["n_samples"] == len(rows) > 0
    assert shap_run.config["shap"]["samples"] >= 2 ** background.shape[1] - 2  # nothing sampled
    # unequal rows per site, so that weighting by them matters
    assert len({len(rows) for rows in site_rows.values()}) > 1, {s: len(r) for s, r in site_rows.items()}


def test_each_site_importance_equals_its_local_computation(
    shap_run: ShapRun, background: np.ndarray, site_rows: dict[str, np.ndarray]
) -> None:
    for site, rows in site_rows.items():
        np.testing.assert_allclose(shap_run.result["sites"][site]["mean_abs_shap"],
                                   _explain(shap_run, background, rows), rtol=1e-9, atol=1e-15, err_msg=site)


def test_global_importance_equals_the_pooled_computation(
    shap_run: ShapRun, background: np.ndarray, site_rows: dict[str, np.ndarray]
) -> None:
    pooled_rows = np.concatenate(list(site_rows.values()))
    pooled = _explain(shap_run, background, pooled_rows)
    federated = shap_run.result["global"]
    assert federated["n_samples"] == len(pooled_rows)
    np.testing.assert_allclose(federated["mean_abs_shap"], pooled, rtol=1e-9, atol=1e-15)
    assert (pooled > 0).all()  # every weight of the model is non-zero, so is every feature's importance
    # an unweighted mean of the sites' importances would not pass
    unweighted = np.mean([shap_run.result["sites"][s]["mean_abs_shap"] for s in site_rows], axis=0)
    assert np.abs(unweighted - pooled).max() > 1e-6
