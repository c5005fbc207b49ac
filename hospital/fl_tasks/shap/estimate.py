"""Mean |SHAP| per feature from a stratified sample, with its standard error; sites combined into one.

The target is the mean |SHAP| over **every** labelled row of every site in the run's window. Each site
explains a simple random sample (without replacement) within each label (:mod:`fl_tasks.shap.sample`),
so the (site, label) pairs are the strata of one stratified sample, and the textbook stratified
estimator applies (Cochran, *Sampling Techniques*, ch. 5). With ``N_h`` rows in stratum h, ``n_h`` of
them explained, their mean ``m_h`` and variance ``s_h**2`` (ddof 1) of |SHAP|, and ``N`` rows in all::

    mean = sum_h (N_h / N) * m_h
    var  = sum_h (N_h / N)**2 * (1 - n_h / N_h) * s_h**2 / n_h        (finite population correction)
    se   = sqrt(var)

Strata are independent, so a site reports its own estimate and variance (over its label strata, with
``N = its rows``), and the server combines sites the same way, weighting each by its **full** row
count, not by the rows it explained: ``mean = sum_s (N_s / N) mean_s``, ``var = sum_s (N_s / N)**2
var_s``. Only these per-feature aggregates leave a site, never a row's values nor a label's share. A
site that explains every row has variance 0, and the global mean is then exactly the pooled mean.

The standard error covers the sampling of rows only: not the explainer's own randomness (sampled
coalitions; 0 when every coalition is enumerated), the background or the model. A stratum with one
row explained out of several borrows the site's pooled sample variance (allocation avoids this).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """Mean |SHAP| per feature over ``rows`` rows, estimated from ``n_samples`` of them.

    :param mean: the estimated mean |SHAP| per feature
    :param variance: the sampling variance of ``mean`` per feature (0: every row explained)
    :param n_samples: the rows explained
    :param rows: the rows the estimate stands for
    """

    mean: np.ndarray
    variance: np.ndarray
    n_samples: int
    rows: int

    @property
    def se(self) -> np.ndarray:
        """The standard error of ``mean`` per feature."""
        return np.sqrt(self.variance)


def site_estimate(abs_shap: np.ndarray, labels: np.ndarray, strata: Mapping[int, int]) -> Estimate:
    """Return a site's stratified estimate of its mean |SHAP| per feature over all its rows.

    :param abs_shap: |SHAP| of each explained row, one column per feature
    :param labels: the explained rows' labels
    :param strata: label -> the rows the site holds with it (every label of ``labels`` included)
    """
    abs_shap = np.asarray(abs_shap, dtype=float)
    labels = np.asarray(labels)
    total = sum(strata.values())
    pooled = abs_shap.var(axis=0, ddof=1) if len(abs_shap) > 1 else np.zeros(abs_shap.shape[1])
    mean = np.zeros(abs_shap.shape[1])
    variance = np.zeros(abs_shap.shape[1])
    for label, rows in strata.items():
        values = abs_shap[labels == label]
        n = len(values)
        if n == 0:
            raise ValueError(f"no row of label {label} explained out of {rows}")
        if n > rows:
            raise ValueError(f"{n} rows of label {label} explained, but only {rows} held")
        weight = rows / total
        mean += weight * values.mean(axis=0)
        spread = values.var(axis=0, ddof=1) if n > 1 else pooled
        variance += weight**2 * (1 - n / rows) * spread / n
    return Estimate(mean, variance, len(abs_shap), total)


def combine(sites: Sequence[Estimate]) -> Estimate:
    """Return the global estimate: the sites' estimates weighted by their full row counts.

    :param sites: each site's estimate (over its own rows)
    """
    rows = np.array([s.rows for s in sites], dtype=float)
    weights = rows / rows.sum()
    mean = np.sum([w * s.mean for w, s in zip(weights, sites, strict=True)], axis=0)
    variance = np.sum([w**2 * s.variance for w, s in zip(weights, sites, strict=True)], axis=0)
    return Estimate(mean, variance, sum(s.n_samples for s in sites), int(rows.sum()))
