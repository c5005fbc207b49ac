"""The model: FedAvg weighting, local training, evaluation, the deployable pipeline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fl_tasks.data import standardize
from fl_tasks.train.model import build_pipeline, evaluate, fedavg, make_classifier, train_locally, with_params

TRAINING = {"alpha": 1e-4, "learning_rate": 0.05, "local_epochs": 5, "seed": 0}


def test_fedavg_weights_each_site_by_its_training_samples() -> None:
    merged = fedavg([{"coef": [1.0, 0.0], "intercept": [0.0]}, {"coef": [4.0, 2.0], "intercept": [1.0]}], [300, 100])
    assert merged == {"coef": [1.75, 0.5], "intercept": [0.25]}
    with pytest.raises(ValueError, match="at least one"):
        fedavg([{"coef": [1.0], "intercept": [0.0]}], [0])


def test_local_training_starts_from_the_global_weights_and_learns() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = (x[:, 0] - x[:, 1] > 0).astype(int)
    start = {"coef": [0.0, 0.0, 0.0], "intercept": [0.0]}
    model = train_locally(make_classifier(TRAINING), start, x, y, seed=1)
    assert model.coef_[0, 0] > 0 > model.coef_[0, 1]
    metrics = evaluate(model, x, y)
    assert metrics["accuracy"] > 0.9 and metrics["auc"] > 0.95 and metrics["loss"] < 0.5
    untrained = evaluate(with_params(make_classifier(TRAINING), start), x, y)
    assert untrained["auc"] == 0.5 and untrained["loss"] == pytest.approx(np.log(2))


def test_evaluate_leaves_out_auc_when_one_class_is_present() -> None:
    model = with_params(make_classifier(TRAINING), {"coef": [1.0], "intercept": [0.0]})
    assert set(evaluate(model, np.array([[1.0], [2.0]]), np.array([1, 1]))) == {"loss", "accuracy"}
    assert evaluate(model, np.empty((0, 1)), np.array([], dtype=int)) == {}


def test_pipeline_predicts_what_the_sites_computed() -> None:
    features = ["a", "b"]
    means, stddevs = {"a": 1.0, "b": 2.0}, {"a": 2.0, "b": 0.5}
    params = {"coef": [0.5, -1.0], "intercept": [0.2]}
    rows = pd.DataFrame([[3.0, np.nan], [0.0, 2.5]], columns=features)
    expected = with_params(make_classifier(TRAINING), params).predict_proba(standardize(rows, means, stddevs))
    assert build_pipeline(features, means, stddevs, params).predict_proba(rows) == pytest.approx(expected)
