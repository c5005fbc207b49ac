"""Bounded SHAP cost (issue 11): a seeded sample stratified by label, and an honest standard error.

No federation: the sampling, the per-site estimate and the server's combination are plain functions,
checked against direct numpy computations on synthetic |SHAP| values.
"""

from __future__ import annotations

import numpy as np
import pytest

from fl_tasks.shap.estimate import Estimate, combine, site_estimate
from fl_tasks.shap.sample import allocate, sample_rows, stratum_rows


def _labels(rng: np.random.Generator, rows: int, positive: float) -> np.ndarray:
    return (rng.random(rows) < positive).astype(int)


@pytest.mark.parametrize(("rows", "positive", "max_rows"), [(10_000, 0.3, 2000), (5003, 0.07, 500), (977, 0.5, 100)])
def test_the_sample_keeps_the_label_proportions(rows: int, positive: float, max_rows: int) -> None:
    labels = _labels(np.random.default_rng(rows), rows, positive)
    chosen = sample_rows(labels, max_rows, seed=0)
    assert len(chosen) == max_rows == len(set(chosen.tolist()))
    assert (np.diff(chosen) > 0).all() and chosen.min() >= 0 and chosen.max() < rows
    for label, held in stratum_rows(labels).items():
        drawn = int((labels[chosen] == label).sum())
        assert abs(drawn - held * max_rows / rows) <= 1, (label, drawn, held)


def test_a_rare_label_still_gets_two_rows() -> None:
    labels = np.zeros(1000, dtype=int)
    labels[[3, 500]] = 1
    chosen = sample_rows(labels, 10, seed=4)
    assert sorted(labels[chosen].tolist()) == [0] * 8 + [1, 1]
    assert allocate(np.array([1, 999]), 10).tolist() == [1, 9]  # a single row is all a label has
    assert allocate(np.array([300, 700]), 10).tolist() == [3, 7]


def test_the_same_seed_draws_the_same_rows_another_seed_others() -> None:
    labels = _labels(np.random.default_rng(1), 5000, 0.4)
    first = sample_rows(labels, 300, seed=7)
    np.testing.assert_array_equal(first, sample_rows(labels.copy(), 300, seed=7))
    assert not np.array_equal(first, sample_rows(labels, 300, seed=8))


@pytest.mark.parametrize("max_rows", [None, 120, 121, 10_000])
def test_max_rows_at_least_the_row_count_means_every_row(max_rows: int | None) -> None:
    labels = _labels(np.random.default_rng(2), 120, 0.5)
    np.testing.assert_array_equal(sample_rows(labels, max_rows, seed=0), np.arange(120))


def _population(rng: np.random.Generator, rows: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic |SHAP| values of 3 features: skewed, and larger for the positive label."""
    labels = _labels(rng, rows, 0.35)
    values = rng.gamma(shape=[1.5, 3.0, 0.7], scale=0.1, size=(rows, 3)) * (1 + labels[:, None]) + shift
    return values, labels


def _site(values: np.ndarray, labels: np.ndarray, max_rows: int | None, seed: int) -> Estimate:
    chosen = sample_rows(labels, max_rows, seed)
    return site_estimate(values[chosen], labels[chosen], stratum_rows(labels))


def test_every_row_explained_gives_the_pooled_mean_and_no_error() -> None:
    rng = np.random.default_rng(3)
    sites = [_population(rng, rows, shift) for rows, shift in ((40, 0.0), (7, 0.2), (130, 0.05))]
    estimate = combine([_site(v, y, None, 0) for v, y in sites])
    np.testing.assert_allclose(estimate.mean, np.concatenate([v for v, _ in sites]).mean(axis=0), rtol=1e-12)
    assert (estimate.se == 0).all()
    assert estimate.n_samples == estimate.rows == 177


def test_the_combination_equals_the_stratified_estimator_computed_on_the_pooled_numbers() -> None:
    """Sites sampling very different fractions: each (site, label) stratum weighted by the rows it holds."""
    rng = np.random.default_rng(5)
    plan = ((20_000, 0.0, 400), (900, 0.3, 400), (3000, 0.1, None), (50_000, 0.05, 100))
    sites = [(*_population(rng, rows, shift), max_rows) for rows, shift, max_rows in plan]
    estimate = combine([_site(v, y, m, seed=11) for v, y, m in sites])

    # the same estimator written out over every (site, label) stratum of the pooled numbers
    total = sum(len(y) for _, y, _ in sites)
    mean, variance = np.zeros(3), np.zeros(3)
    for values, labels, max_rows in sites:
        chosen = np.zeros(len(labels), dtype=bool)
        chosen[sample_rows(labels, max_rows, seed=11)] = True
        for label in (0, 1):
            held = labels == label
            drawn = values[held & chosen]
            weight, fpc = held.sum() / total, 1 - len(drawn) / held.sum()
            mean += weight * drawn.mean(axis=0)
            variance += weight**2 * fpc * drawn.var(axis=0, ddof=1) / len(drawn)
    np.testing.assert_allclose(estimate.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(estimate.se, np.sqrt(variance), rtol=1e-10)
    assert estimate.rows == total and estimate.n_samples == 400 + 400 + 3000 + 100
    # weighting sites by the rows they explained instead would be far off the full-population mean
    truth = np.concatenate([v for v, _, _ in sites]).mean(axis=0)
    by_sample = np.average([v[sample_rows(y, m, 11)].mean(axis=0) for v, y, m in sites], axis=0,
                           weights=[min(m or len(y), len(y)) for _, y, m in sites])
    assert (np.abs(by_sample - truth) > 5 * estimate.se).any()
    assert (np.abs(estimate.mean - truth) < 4 * estimate.se).all()


def test_the_standard_error_is_honest() -> None:
    """The full-population mean lies within 3 SE of the estimate; over many seeds, within 1.96 SE ~95% of the time."""
    rng = np.random.default_rng(6)
    sites = [_population(rng, rows, shift) for rows, shift in ((8000, 0.0), (2500, 0.4), (600, 0.1))]
    truth = np.concatenate([v for v, _ in sites]).mean(axis=0)
    estimates = [combine([_site(v, y, 300, seed) for v, y in sites]) for seed in range(400)]
    assert (np.abs(estimates[0].mean - truth) < 3 * estimates[0].se).all()
    z = np.array([(e.mean - truth) / e.se for e in estimates])
    coverage = (np.abs(z) < 1.96).mean(axis=0)
    assert ((coverage > 0.92) & (coverage < 0.98)).all(), coverage
    assert ((np.abs(z) > 3).mean(axis=0) < 0.02).all()  # skewed values: a t tail, a little heavier than normal
    means = np.array([e.mean for e in estimates])
    assert (np.abs(means.mean(axis=0) - truth) < 3 * means.std(axis=0) / np.sqrt(len(means))).all()  # unbiased
    assert ((z.std(axis=0) > 0.85) & (z.std(axis=0) < 1.15)).all()  # the SE is the spread, not more nor less


def test_a_label_missing_from_the_sample_is_an_error() -> None:
    with pytest.raises(ValueError, match="no row of label 1"):
        site_estimate(np.ones((3, 2)), np.array([0, 0, 0]), {0: 10, 1: 5})
