"""Federated versus pooled: is the federated model as good as one trained on all hospitals' data?

The federated model comes from the real training job (``fl_tasks.train.job``) on a local NVFlare POC
stack, one job per seed, after one federated statistics job. The references are computed here, and
only here, by reading every site's data file from its POC workspace and pooling it:

- ``centralized``: the same SGD logistic regression (same hyper-parameters) trained on the pooled
  training splits for the same amount of work (``rounds * local_epochs`` passes over the data);
- ``centralized-logreg``: a plain scikit-learn ``LogisticRegression`` on the same pooled splits;
- ``local:<site>``: the same SGD model trained on one site's training split only (same passes).

Every model sees the same features: the clients' encoding, imputed and scaled with the global mean
and stddev of the federated statistics job, and the clients' stratified split for each seed. Each is
evaluated on the union of the sites' test splits and on each site's own test split.

The floor (issue 4), on the means over the seeds: the federated model is within ``AUC_TOLERANCE``
ROC AUC and ``ACCURACY_TOLERANCE`` accuracy of ``centralized`` on the union, and beats every
site's local-only model there (AUC and accuracy).

    .venv/bin/python benchmarks/quality.py [--seeds 5] [--rounds R] [--local-epochs E] ...

brings up its own stack on a free NVFlare port (never 8002), stops it at the end, prints the tables,
the checks, and as its last line the mean federated-minus-centralized gaps; it exits 1 when the floor
is not met or the reference is unsound.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make the ``benchmarks`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fl_tasks.train.job as train_job
from benchmarks._federation import Job, job_config, private_stack, run_jobs, run_stats, stdout_to_stderr
from fl_tasks.data import load_model_inputs, split_indices
from fl_tasks.jobs import client_settings
from fl_tasks.train.model import evaluate, initial_params, make_classifier, train_locally, with_params
from flareflow.local.stack import Stack

log = logging.getLogger("benchmarks.quality")

#: every record of the simulated admissions (2024-11 … 2026-10) is used
UNTIL = "2026-11-01"
SEEDS = (0, 1, 2, 3, 4)
#: the floor: the federated model may trail the centralized one by at most this much (means over seeds)
AUC_TOLERANCE = 0.01
ACCURACY_TOLERANCE = 0.02
#: the SGD reference must itself be a sound logistic regression: this close to scikit-learn's in AUC
REFERENCE_AUC_TOLERANCE = 0.01
UNION = "union"
CENTRALIZED, LOGREG, FEDERATED = "centralized", "centralized-logreg", "federated"
METRICS = ("auc", "accuracy")

#: one seed's evaluation: model -> scope (``union`` or a site) -> metric -> value
Evaluation = dict[str, dict[str, dict[str, float]]]


@dataclass(frozen=True)
class SiteData:
    """One site's records as its client sees them: standardized features and 0/1 labels."""

    x: np.ndarray
    y: np.ndarray


@dataclass
class Comparison:
    """The evaluations of every model for every seed, and how the federated models were trained."""

    sites: list[str]
    training: dict[str, Any]
    seeds: list[int] = field(default_factory=list)
    evaluations: list[Evaluation] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def local(self, site: str) -> str:
        return f"local:{site}"

    @property
    def models(self) -> list[str]:
        return [CENTRALIZED, LOGREG, FEDERATED, *(self.local(site) for site in self.sites)]

    def values(self, model: str, scope: str, metric: str) -> np.ndarray:
        """Return one metric of one model on one test scope, per seed (NaN where undefined)."""
        return np.array([e[model][scope].get(metric, math.nan) for e in self.evaluations], dtype=float)

    def mean(self, model: str, scope: str, metric: str) -> float:
        values = self.values(model, scope, metric)
        return float(np.nanmean(values)) if np.isfinite(values).any() else math.nan

    def gaps(self) -> dict[str, float]:
        """Return the mean federated-minus-centralized AUC and accuracy on the union."""
        return {metric: self.mean(FEDERATED, UNION, metric) - self.mean(CENTRALIZED, UNION, metric)
                for metric in METRICS}


# -- the sites' data, read where the POC sites keep it (pooled only here, as the reference) ---------
def load_sites(stack: Stack, config: Mapping[str, Any], stats_result: Path, until: str) -> dict[str, SiteData]:
    """Read every site's data file from its POC workspace and encode it exactly as its client does.

    :param stack: the running stack
    :param config: the merged training job config
    :param stats_result: the federated statistics result (the global mean/stddev come from it)
    :param until: ISO date; records dated before it are used
    """
    settings = client_settings(config, until, str(stats_result))  # the means/stddevs the clients get
    poc = stack.poc()
    return {site: SiteData(*load_model_inputs(poc.site_workspace(site), settings))
            for site in config["federation"]["sites"]}


def split_sites(
    sites: Mapping[str, SiteData], fractions: Mapping[str, float], seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Return each site's train/validation/test rows for a seed, as its client splits them."""
    parts = (fractions["train"], fractions["validation"], fractions["test"])
    return {site: split_indices(data.y, parts, seed) for site, data in sites.items()}


def _rows(sites: Mapping[str, SiteData], splits: Mapping[str, Sequence[np.ndarray]], part: int,
          only: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    names = list(only or sites)
    return (np.vstack([sites[s].x[splits[s][part]] for s in names]),
            np.concatenate([sites[s].y[splits[s][part]] for s in names]))


def train_sgd(training: Mapping[str, Any], x: np.ndarray, y: np.ndarray) -> Any:
    """Train the clients' SGD logistic regression from zero for ``rounds * local_epochs`` passes."""
    model = make_classifier(training, local_epochs=training["rounds"] * training["local_epochs"])
    return train_locally(model, initial_params(x.shape[1]), x, y, seed=training["seed"])


def train_logreg(x: np.ndarray, y: np.ndarray) -> Any:
    """Train scikit-learn's plain logistic regression (L2, C=1, lbfgs to convergence)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=5000).fit(x, y)


def reference_models(
    training: Mapping[str, Any], sites: Mapping[str, SiteData], splits: Mapping[str, Sequence[np.ndarray]]
) -> dict[str, Any]:
    """Return the centralized models (pooled training splits) and each site's local-only model."""
    x, y = _rows(sites, splits, 0)
    models = {CENTRALIZED: train_sgd(training, x, y), LOGREG: train_logreg(x, y)}
    for site in sites:
        models[f"local:{site}"] = train_sgd(training, *_rows(sites, splits, 0, [site]))
    return models


def evaluate_models(
    models: Mapping[str, Any], sites: Mapping[str, SiteData], splits: Mapping[str, Sequence[np.ndarray]]
) -> Evaluation:
    """Evaluate every model on the union of the test splits and on each site's test split."""
    scopes = {UNION: _rows(sites, splits, 2), **{s: _rows(sites, splits, 2, [s]) for s in sites}}
    return {name: {scope: evaluate(model, *rows) for scope, rows in scopes.items()}
            for name, model in models.items()}


def check_same_view(evaluation: Evaluation, result: Mapping[str, Any], seed: int) -> None:
    """Fail unless the federated model scores here exactly what each client reported for its test split.

    This proves the reference models see the clients' data, encoding, standardization and split.
    """
    for site, reported in result["test"].items():
        if site == "global":
            continue
        here = evaluation[FEDERATED][site]
        for metric, value in reported.items():
            if not math.isclose(here.get(metric, math.nan), value, rel_tol=1e-9, abs_tol=1e-9):
                raise AssertionError(f"seed {seed}, site {site}: {metric} here {here.get(metric)} but the "
                                     f"client reported {value}; the benchmark does not see the clients' data")


# -- the comparison ---------------------------------------------------------------------------------
def compare(
    stack: Stack, work: Path, *, seeds: Sequence[int] = SEEDS, overrides: Mapping[str, Any] | None = None,
    until: str = UNTIL,
) -> Comparison:
    """Run the statistics job once and the training job once per seed (side by side) on ``stack``;
    evaluate the federated models and the references for every seed.

    :param stack: a running local stack
    :param work: a folder for the jobs' exports and results
    :param seeds: the training seeds (each also the split seed, as in the pipeline)
    :param overrides: config settings merged over every job's config (e.g. ``{"training": {...}}``)
    :param until: ISO date; records dated before it are used
    """
    started = time.monotonic()
    stats_result = run_stats(stack, until, work, overrides)
    stats_s = time.monotonic() - started
    configs = {seed: job_config(stack, "train", _with_seed(overrides, seed)) for seed in seeds}
    jobs = [Job(train_job, f"train-seed{seed}", {"config": configs[seed], "until": until,
                                                 "stats_result": str(stats_result)}) for seed in seeds]
    started = time.monotonic()
    result_files = run_jobs(stack, jobs, work)
    train_s = time.monotonic() - started

    first = configs[seeds[0]]
    sites = load_sites(stack, first, stats_result, until)
    training = {k: v for k, v in first["training"].items() if k != "seed"}
    comparison = Comparison(sites=list(sites), training=training,
                            timings={"stats_job_s": stats_s, "training_jobs_s": train_s})
    for seed, result_file in zip(seeds, result_files, strict=True):
        result = json.loads(result_file.read_text())
        cfg = configs[seed]
        splits = split_sites(sites, cfg["data"]["split"], seed)
        models = reference_models(cfg["training"], sites, splits)
        models[FEDERATED] = with_params(make_classifier(cfg["training"]), result["model"])
        evaluation = evaluate_models(models, sites, splits)
        check_same_view(evaluation, result, seed)
        comparison.seeds.append(seed)
        comparison.evaluations.append(evaluation)
    return comparison


def _with_seed(overrides: Mapping[str, Any] | None, seed: int) -> dict[str, Any]:
    merged = dict(overrides or {})
    merged["training"] = {**dict(merged.get("training", {})), "seed": seed}
    return merged


# -- the verdict ------------------------------------------------------------------------------------
def floor_checks(comparison: Comparison) -> list[tuple[bool, str]]:
    """Return each condition of the floor with whether it holds (means over the seeds, on the union)."""
    checks = []
    gaps = comparison.gaps()
    for metric, tolerance in (("auc", AUC_TOLERANCE), ("accuracy", ACCURACY_TOLERANCE)):
        checks.append((gaps[metric] >= -tolerance,
                       f"federated - centralized {metric}: {gaps[metric]:+.4f} >= -{tolerance}"))
    federated = {m: comparison.mean(FEDERATED, UNION, m) for m in METRICS}
    for site in comparison.sites:
        for metric in METRICS:
            local = comparison.mean(comparison.local(site), UNION, metric)
            checks.append((federated[metric] > local,
                           f"federated {metric} {federated[metric]:.4f} > local:{site} {local:.4f}"))
    return checks


def reference_checks(comparison: Comparison) -> list[tuple[bool, str]]:
    """Return the sanity conditions on the reference itself: the SGD centralized model must be a sound
    logistic regression (close to scikit-learn's), or a weak reference would make the floor easy."""
    sgd, logreg = (comparison.mean(m, UNION, "auc") for m in (CENTRALIZED, LOGREG))
    return [(abs(sgd - logreg) <= REFERENCE_AUC_TOLERANCE,
             f"centralized SGD auc {sgd:.4f} within {REFERENCE_AUC_TOLERANCE} of scikit-learn's {logreg:.4f}")]


def failures(checks: Sequence[tuple[bool, str]]) -> list[str]:
    """Return the descriptions of the checks that do not hold."""
    return [text for ok, text in checks if not ok]


# -- the report -------------------------------------------------------------------------------------
def _cell(values: np.ndarray) -> str:
    values = values[np.isfinite(values)]
    if not values.size:
        return "n/a"
    spread = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return f"{values.mean():.3f} ± {spread:.3f}"


def format_table(comparison: Comparison, metric: str) -> str:
    """Return one metric of every model on the union and on each site's test split, mean ± sd."""
    scopes = [UNION, *comparison.sites]
    width = max(len(m) for m in comparison.models) + 2
    lines = [f"{metric.upper() if metric == 'auc' else metric:<{width}}" + "".join(f"{s:>17}" for s in scopes)]
    for model in comparison.models:
        lines.append(f"{model:<{width}}" + "".join(f"{_cell(comparison.values(model, s, metric)):>17}"
                                                   for s in scopes))
    return "\n".join(lines)


def gap_line(comparison: Comparison) -> str:
    """Return the last line: the mean federated-minus-centralized AUC and accuracy gaps."""
    gaps = comparison.gaps()
    return f"auc_gap={gaps['auc']:+.3f} acc_gap={gaps['accuracy']:+.3f} seeds={len(comparison.seeds)}"


def report(comparison: Comparison) -> str:
    """Return the full report: settings, both tables, the checks and, last, the gap line."""
    settings = " ".join(f"{k}={v}" for k, v in comparison.training.items())
    timings = " ".join(f"{k}={v:.0f}" for k, v in comparison.timings.items())
    lines = [
        f"federated vs pooled, test splits, seeds {comparison.seeds}; mean ± sd over seeds",
        f"training: {settings}   (centralized/local: the same SGD for rounds * local_epochs passes)",
        f"wall time: {timings}",
        "",
        format_table(comparison, "auc"),
        "",
        format_table(comparison, "accuracy"),
        "",
        "floor:",
        *(f"  {'PASS' if ok else 'FAIL'} {text}" for ok, text in floor_checks(comparison)),
        "reference:",
        *(f"  {'PASS' if ok else 'FAIL'} {text}" for ok, text in reference_checks(comparison)),
        gap_line(comparison),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=len(SEEDS), help="number of seeds (0, 1, …)")
    for flag, kind in (("rounds", int), ("local-epochs", int), ("learning-rate", float), ("alpha", float)):
        parser.add_argument(f"--{flag}", type=kind, help=f"override training.{flag.replace('-', '_')}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    training = {key: getattr(args, key) for key in ("rounds", "local_epochs", "learning_rate", "alpha")
                if getattr(args, key) is not None}
    with (stdout_to_stderr(), tempfile.TemporaryDirectory(prefix="flareflow-quality-") as work,
          private_stack() as stack):
        comparison = compare(stack, Path(work), seeds=range(args.seeds),
                             overrides={"training": training} if training else None)
    print(report(comparison))
    return 1 if failures([*floor_checks(comparison), *reference_checks(comparison)]) else 0


if __name__ == "__main__":
    sys.exit(main())
