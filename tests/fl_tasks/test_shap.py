"""SHAP: a background from federated statistics only, model-agnostic explanations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fl_tasks.shap.background import background_rows
from fl_tasks.shap.explain import mean_abs_shap, positive_probability

STATS = {
    "features": ["age", "chol"],
    "statistics": {"mean": {"age": {"global": 50.0}, "chol": {"global": 240.0}},
                   "stddev": {"age": {"global": 10.0}, "chol": {"global": 40.0}}},
    "histograms": {"age": {"global": [[30.0, 50.0, 10], [50.0, 70.0, 30]]}},
}


def test_background_comes_from_global_histograms_and_is_reproducible() -> None:
    rows = background_rows(STATS, 200, seed=7)
    assert rows.shape == (200, 2)
    ages = rows[:, 0] * 10.0 + 50.0
    assert ages.min() >= 30.0 and ages.max() <= 70.0
    assert 0.65 < (ages >= 50.0).mean() < 0.85  # 30 of 40 records fall in the upper bin
    assert (rows[:, 1] == 0.0).all()  # no histogram: the global mean (0 once standardized)
    assert np.array_equal(rows, background_rows(STATS, 200, seed=7))


@pytest.mark.parametrize("explainer", ["kernel", "permutation"])
def test_a_feature_the_model_ignores_gets_no_importance(explainer: str) -> None:
    rng = np.random.default_rng(0)
    rows, background = rng.normal(size=(40, 3)), rng.normal(size=(10, 3))
    params = {"coef": [2.0, 0.0, -0.5], "intercept": [0.0]}
    importance = mean_abs_shap(params, background, rows, explainer=explainer, samples=200)
    assert importance[1] == pytest.approx(0.0, abs=1e-6)
    assert importance[0] > importance[2] > 0.0


def test_explainers_agree() -> None:
    rng = np.random.default_rng(1)
    rows, background = rng.normal(size=(30, 4)), rng.normal(size=(8, 4))
    params = {"coef": [1.0, -0.5, 0.25, 0.0], "intercept": [0.1]}
    kernel = mean_abs_shap(params, background, rows, explainer="kernel", samples=500)
    permutation = mean_abs_shap(params, background, rows, explainer="permutation", samples=500)
    assert kernel == pytest.approx(permutation, abs=0.01)
    with pytest.raises(ValueError, match="unknown SHAP explainer"):
        mean_abs_shap(params, background, rows, explainer="tree", samples=10)


def _shapley_values(params: dict, background: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Return one row's Shapley values by brute force: every coalition, features outside it from the background."""
    n = row.size
    coalitions = np.arange(2**n)
    masks = (coalitions[:, None] >> np.arange(n)) & 1 == 1  # coalition c holds feature i if bit i of c is set
    mixed = np.where(masks[:, None, :], row, background[None, :, :])
    value = positive_probability(params)(mixed.reshape(-1, n)).reshape(2**n, -1).mean(axis=1)
    size = masks.sum(axis=1)
    weight = np.array([math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)])
    phi = np.zeros(n)
    for i in range(n):
        without = coalitions[~masks[:, i]]
        phi[i] = (weight[size[without]] * (value[without | (1 << i)] - value[without])).sum()
    return phi


def test_kernel_with_every_coalition_gives_the_exact_shapley_values() -> None:
    rng = np.random.default_rng(2)
    n = 12  # more than the 10 features shap's default lasso would keep per row
    rows, background = rng.normal(size=(3, n)), rng.normal(size=(6, n))
    params = {"coef": rng.normal(size=n).tolist(), "intercept": [0.2]}
    exact = np.abs([_shapley_values(params, background, row) for row in rows]).mean(axis=0)
    kernel = mean_abs_shap(params, background, rows, explainer="kernel", samples=2**n - 2)
    np.testing.assert_allclose(kernel, exact, rtol=1e-9, atol=1e-12)


def _weighted_site_means(sites: list[np.ndarray], background: np.ndarray, params: dict, samples: int) -> np.ndarray:
    """Aggregate per-site mean |SHAP| as ``FederatedShap`` does: weighted by the rows each site explained."""
    means = [mean_abs_shap(params, background, x, explainer="kernel", samples=samples, seed=3) for x in sites]
    return np.average(means, axis=0, weights=[len(x) for x in sites])


def test_site_means_weighted_by_rows_equal_the_pooled_mean_only_when_every_coalition_is_enumerated() -> None:
    rng = np.random.default_rng(4)
    n = 6
    sites = [rng.normal(size=(size, n)) for size in (7, 3, 5)]
    background = rng.normal(size=(5, n))
    params = {"coef": [1.0, -0.7, 0.4, 0.0, 0.9, -0.2], "intercept": [-0.3]}
    pooled_rows = np.concatenate(sites)
    every = 2**n - 2
    pooled = mean_abs_shap(params, background, pooled_rows, explainer="kernel", samples=every, seed=3)
    np.testing.assert_allclose(_weighted_site_means(sites, background, params, every), pooled, rtol=1e-12)
    # sampled coalitions: a row's values depend on the random state its batch left, so the identity breaks
    sampled = mean_abs_shap(params, background, pooled_rows, explainer="kernel", samples=20, seed=3)
    assert np.abs(_weighted_site_means(sites, background, params, 20) - sampled).max() > 1e-4
