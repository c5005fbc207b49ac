"""SHAP: a background from federated statistics only, model-agnostic explanations."""

from __future__ import annotations

import numpy as np
import pytest

from fl_tasks.shap.background import background_rows
from fl_tasks.shap.explain import mean_abs_shap

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
