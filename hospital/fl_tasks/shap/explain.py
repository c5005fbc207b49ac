"""Explain a model with a model-agnostic SHAP explainer; plain local code, used at each site."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import shap
from sklearn.linear_model import SGDClassifier

from fl_tasks.train.model import make_classifier, with_params


def positive_probability(params: Mapping[str, Sequence[float]]) -> Any:
    """Return the function SHAP explains: the model's probability of the positive class."""
    model: SGDClassifier = with_params(make_classifier({"alpha": 0.0, "learning_rate": 1.0,
                                                        "local_epochs": 1, "seed": 0}), params)
    return lambda x: model.predict_proba(np.asarray(x, dtype=float))[:, 1]


def mean_abs_shap(
    params: Mapping[str, Sequence[float]], background: np.ndarray, rows: np.ndarray, *,
    explainer: str, samples: int, seed: int = 0,
) -> np.ndarray:
    """Return the mean |SHAP value| per feature of the model over ``rows`` (see :func:`abs_shap`)."""
    return abs_shap(params, background, rows, explainer=explainer, samples=samples, seed=seed).mean(axis=0)


def abs_shap(
    params: Mapping[str, Sequence[float]], background: np.ndarray, rows: np.ndarray, *,
    explainer: str, samples: int, seed: int = 0,
) -> np.ndarray:
    """Return the |SHAP value| of each row and feature of the model; they stay at the site.

    :param params: the model weights (``coef``, ``intercept``)
    :param background: the reference rows SHAP integrates features out over
    :param rows: the rows to explain (standardized features)
    :param explainer: ``kernel`` (KernelExplainer) or ``permutation`` (PermutationExplainer)
    :param samples: model evaluations per explained row; for ``kernel``, ``2**M - 2`` or more (M features)
        enumerates every coalition: exact values, independent of the seed and of the other rows
    :param seed: the random seed of the explainer
    """
    predict = positive_probability(params)
    if explainer == "kernel":
        # KernelExplainer samples coalitions with numpy's global generator. With samples >= 2**M - 2 (M
        # features) it enumerates every coalition instead: each row's values are then exact and do not
        # depend on the rows explained with it, so per-site means combine into the pooled mean.
        np.random.seed(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # l1_reg=False: estimate every feature (shap's default lasso keeps 10 features per row)
            values = shap.KernelExplainer(predict, background).shap_values(
                rows, nsamples=samples, l1_reg=False, silent=True)
    elif explainer == "permutation":
        masker = shap.maskers.Independent(background, max_samples=len(background))
        explain = shap.PermutationExplainer(predict, masker, seed=seed)
        values = explain(rows, max_evals=max(samples, 2 * rows.shape[1] + 1)).values
    else:
        raise ValueError(f"unknown SHAP explainer {explainer!r}")
    return np.abs(np.asarray(values, dtype=float))
