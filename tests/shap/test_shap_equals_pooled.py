"""Federated SHAP equals SHAP on the pooled data (issue 4), on the real SHAP job.

The real statistics job, then the real SHAP job on the test stack's NVFlare POC, with a fixed model and
settings that make each row's explanation exact: the kernel explainer with ``2**M - 2`` samples (M
features) enumerates every coalition, so a row's SHAP values depend neither on the random state nor on
the other rows explained with it. A one-month window leaves the sites few and unequal rows, so the
weighting by rows matters.

Two jobs run side by side: one explains every row (``max_rows`` null: the global importance is the pooled
mean, its standard error 0), one a sample of the larger sites' rows (``max_rows`` 10, issue 11: each site's
estimate and standard error are those of its own seeded, label-stratified sample, and the global one
weights sites by every row they hold).

The reference is computed here, from each site's own rows read from its workspace with
``fl_tasks.data.load_model_inputs`` (same settings file), with the same model, explainer and a background
rebuilt from the same statistics and seed. Pooling happens only here, in the test.
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
from benchmarks._federation import Job, job_config, run_jobs
from fl_tasks.data import FeatureSpec, load_model_inputs
from fl_tasks.jobs import CLIENT_CONFIG_FILE
from fl_tasks.shap.background import background_rows
from fl_tasks.shap.estimate import Estimate, combine, site_estimate
from fl_tasks.shap.explain import abs_shap, mean_abs_shap
from fl_tasks.shap.sample import sample_rows, stratum_rows
from fl_tasks.stats.result import read_result
from flareflow.local.stack import Stack

N_FEATURES = 15
#: every coalition of the model's features is enumerated, nothing is sampled
OVERRIDES = {"data": {"window_months": 1},
             "shap": {"explainer": "kernel", "samples": 2**N_FEATURES - 2, "max_rows": None}}
#: fewer than the larger sites hold in the one-month window
SAMPLED_MAX_ROWS = 10
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
def shap_runs(stack: Stack, production_run: StatsRun, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ShapRun]:
    """Both jobs, submitted together: ``shap`` explains every row, ``shap_sampled`` at most 10 per site."""
    work = Path(tmp_path_factory.mktemp("shap"))
    (work / "training.json").write_text(json.dumps({"model": MODEL}))
    stats_file = production_run.download / "workspace" / stats_job.RESULT_FILE
    configs = {"shap": job_config(stack, "shap", OVERRIDES),
               "shap_sampled": job_config(stack, "shap", {**OVERRIDES, "shap": {
                   **OVERRIDES["shap"], "max_rows": SAMPLED_MAX_ROWS}})}
    jobs = [Job(shap_job, name, {"config": config, "until": UNTIL, "stats_result": str(stats_file),
                                 "training_result": str(work / "training.json")})
            for name, config in configs.items()]
    files = run_jobs(stack, jobs, work, timeout_s=900)
    return {name: ShapRun(config, stats_file, work / name / "job" / name, json.loads(file.read_text()))
            for (name, config), file in zip(configs.items(), files, strict=True)}


@pytest.fixture(scope="module")
def shap_run(shap_runs: dict[str, ShapRun]) -> ShapRun:
    return shap_runs["shap"]


@pytest.fixture(scope="module")
def background(shap_run: ShapRun) -> np.ndarray:
    """The background rebuilt from the statistics result and seed the job used."""
    features = FeatureSpec.from_dict(shap_run.config["data"]["features"]).columns
    return background_rows(read_result(shap_run.stats_file, features), shap_run.config["shap"]["background_size"],
                           seed=shap_run.config["training"]["seed"])


@pytest.fixture(scope="module")
def site_inputs(stack: Stack, shap_run: ShapRun) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each site's rows and labels, read from its own workspace as a job's client reads them."""
    return {site: load_model_inputs(stack.poc().site_workspace(site), shap_run.settings(site))
            for site in stack.sites()}


@pytest.fixture(scope="module")
def site_rows(site_inputs: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """Each site's rows: with ``max_rows`` null, every one is explained."""
    return {site: x for site, (x, _) in site_inputs.items()}


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
        assert shap_run.settings(site)["shap"]["max_rows"] is None
        scope = shap_run.result["sites"][site]
        assert scope["n_samples"] == scope["rows"] == len(rows) > 0
        assert scope["se"] == [0.0] * N_FEATURES  # every row explained: no sampling error
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
    assert federated["n_samples"] == federated["rows"] == len(pooled_rows)
    np.testing.assert_allclose(federated["mean_abs_shap"], pooled, rtol=1e-9, atol=1e-15)
    assert federated["se"] == [0.0] * N_FEATURES
    assert (pooled > 0).all()  # every weight of the model is non-zero, so is every feature's importance
    # an unweighted mean of the sites' importances would not pass
    unweighted = np.mean([shap_run.result["sites"][s]["mean_abs_shap"] for s in site_rows], axis=0)
    assert np.abs(unweighted - pooled).max() > 1e-6


def test_a_sampled_site_reports_the_estimate_of_its_own_stratified_sample(
    shap_runs: dict[str, ShapRun], background: np.ndarray, site_inputs: dict[str, tuple[np.ndarray, np.ndarray]]
) -> None:
    run = shap_runs["shap_sampled"]
    options, seed = run.config["shap"], run.config["training"]["seed"]
    estimates = {}
    for site, (x, labels) in site_inputs.items():
        assert run.settings(site)["shap"]["max_rows"] == SAMPLED_MAX_ROWS
        chosen = sample_rows(labels, SAMPLED_MAX_ROWS, seed)
        values = abs_shap(MODEL, background, x[chosen], explainer=options["explainer"], samples=options["samples"],
                          seed=seed)
        estimates[site] = site_estimate(values, labels[chosen], stratum_rows(labels))
        scope = run.result["sites"][site]
        assert scope["rows"] == len(x)
        assert scope["n_samples"] == min(len(x), SAMPLED_MAX_ROWS)
        np.testing.assert_allclose(scope["mean_abs_shap"], estimates[site].mean, rtol=1e-9, atol=1e-15,
                                   err_msg=site)
        np.testing.assert_allclose(scope["se"], estimates[site].se, rtol=1e-9, atol=1e-15, err_msg=site)
        assert (np.asarray(scope["se"]) > 0).any() == (len(x) > SAMPLED_MAX_ROWS), site
    assert any(len(x) > SAMPLED_MAX_ROWS for x, _ in site_inputs.values()), "no site was sampled"
    expected: Estimate = combine([estimates[s] for s in run.result["sites"]])
    federated = run.result["global"]
    assert federated["rows"] == sum(len(x) for x, _ in site_inputs.values())
    np.testing.assert_allclose(federated["mean_abs_shap"], expected.mean, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(federated["se"], expected.se, rtol=1e-9, atol=1e-15)
    # the sample's estimate lies within a few standard errors of the importance over every row
    exact = np.asarray(shap_runs["shap"].result["global"]["mean_abs_shap"])
    assert (np.abs(np.asarray(federated["mean_abs_shap"]) - exact) <= 4 * expected.se + 1e-12).all()
