"""The model every site trains and the research centre registers: logistic regression by SGD."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

CLASSES = np.array([0, 1])


def initial_params(n_features: int) -> dict[str, list[float]]:
    """Return the starting global model: all weights zero."""
    return {"coef": [0.0] * n_features, "intercept": [0.0]}


def make_classifier(training: Mapping[str, Any], local_epochs: int | None = None) -> SGDClassifier:
    """Return an unfitted SGD logistic regression with the configured hyper-parameters.

    :param training: the ``training`` section of the job config
    :param local_epochs: epochs per call to ``fit`` (default: the configured local epochs)
    """
    return SGDClassifier(
        loss="log_loss", penalty="l2", alpha=training["alpha"], learning_rate="constant",
        eta0=training["learning_rate"], max_iter=local_epochs or training["local_epochs"], tol=None,
        shuffle=True, random_state=training["seed"],
    )


def with_params(model: SGDClassifier, params: Mapping[str, Sequence[float]]) -> SGDClassifier:
    """Set a classifier's weights from exchanged params, making it ready to predict."""
    model.coef_ = np.asarray(params["coef"], dtype=float).reshape(1, -1)
    model.intercept_ = np.asarray(params["intercept"], dtype=float).reshape(1)
    model.classes_ = CLASSES
    model.n_features_in_ = model.coef_.shape[1]
    return model


def get_params(model: SGDClassifier) -> dict[str, list[float]]:
    """Return a classifier's weights as JSON-safe params."""
    return {"coef": model.coef_.ravel().tolist(), "intercept": model.intercept_.ravel().tolist()}


def train_locally(
    model: SGDClassifier, params: Mapping[str, Sequence[float]], x: np.ndarray, y: np.ndarray, seed: int
) -> SGDClassifier:
    """Run the local epochs of SGD starting from the global weights.

    :param model: the site's classifier (its hyper-parameters are used)
    :param params: the global weights to start from
    :param x: standardized training features
    :param y: 0/1 training labels
    :param seed: the shuffling seed of this round
    """
    model.set_params(random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a fixed number of epochs is intended
        model.fit(x, y, coef_init=np.asarray(params["coef"], dtype=float).reshape(1, -1),
                  intercept_init=np.asarray(params["intercept"], dtype=float).reshape(1))
    return model


def evaluate(model: SGDClassifier, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Return loss, accuracy and (when both classes occur) ROC AUC of a model on one split."""
    if len(y) == 0:
        return {}
    proba = model.predict_proba(x)[:, 1]
    metrics = {
        "loss": float(log_loss(y, proba, labels=CLASSES)),
        "accuracy": float(accuracy_score(y, (proba >= 0.5).astype(int))),
    }
    if len(np.unique(y)) == 2:
        metrics["auc"] = float(roc_auc_score(y, proba))
    return metrics


def fedavg(params: Sequence[Mapping[str, Sequence[float]]], weights: Sequence[float]) -> dict[str, list[float]]:
    """Average site weights, each site weighted by its number of training samples."""
    w = np.asarray(weights, dtype=float)
    if w.sum() <= 0:
        raise ValueError("FedAvg needs at least one training sample")
    return {
        key: (np.average(np.asarray([p[key] for p in params], dtype=float), axis=0, weights=w)).tolist()
        for key in ("coef", "intercept")
    }


def build_pipeline(
    features: Sequence[str], means: Mapping[str, float], stddevs: Mapping[str, float],
    params: Mapping[str, Sequence[float]],
) -> Pipeline:
    """Return the deployable model: impute with global means, standardize, classify.

    It takes the encoded features (missing values as NaN) and is fitted from federated aggregates
    only: the imputer and scaler are set from the global mean and stddev, the classifier from the
    global weights.

    :param features: the encoded feature names, in model order
    :param means: global mean per feature
    :param stddevs: global stddev per feature
    :param params: the global model weights
    """
    mu = np.array([means[f] for f in features], dtype=float)
    sigma = np.array([stddevs[f] for f in features], dtype=float)
    sigma[~np.isfinite(sigma) | (sigma <= 0)] = 1.0
    imputer = SimpleImputer(strategy="mean").fit(pd.DataFrame([mu], columns=list(features)))
    # two synthetic rows mu ± sigma have exactly mean mu and (population) stddev sigma
    scaler = StandardScaler().fit(np.vstack([mu - sigma, mu + sigma]))
    classifier = with_params(make_classifier({"alpha": 0.0, "learning_rate": 1.0, "local_epochs": 1, "seed": 0}),
                             params)
    return Pipeline([("impute", imputer), ("scale", scaler), ("classify", classifier)])
