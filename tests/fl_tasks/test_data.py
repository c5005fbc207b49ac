"""A site's data handling: encoding, windowing, splitting, standardizing."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fl_tasks.data import (
    COLUMNS,
    FeatureSpec,
    encode_features,
    encode_label,
    load_site_data,
    split_indices,
    standardize,
)

SPEC = FeatureSpec(
    numeric=("age", "chol"), binary={"sex": "Male", "fbs": "true"},
    categorical={"cp": ("typical angina", "asymptomatic")}, zero_means_missing=("chol",),
)


def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "age": [50, 60, 70], "chol": [200.0, 0.0, np.nan], "sex": ["Male", "Female", "Male"],
        "fbs": [True, False, None], "cp": ["asymptomatic", "typical angina", "non-anginal"], "num": [0, 2, 1],
    })


def test_encoding_follows_the_spec_and_keeps_missing_values_missing() -> None:
    encoded = encode_features(frame(), SPEC)
    assert list(encoded.columns) == ["age", "chol", "sex", "fbs", "cp=typical angina", "cp=asymptomatic"]
    assert encoded["chol"].tolist()[0] == 200.0 and encoded["chol"].isna().tolist()[1:] == [True, True]
    assert encoded["sex"].tolist() == [1.0, 0.0, 1.0]
    assert encoded["fbs"].tolist()[:2] == [1.0, 0.0] and np.isnan(encoded["fbs"].iloc[2])
    assert encoded["cp=asymptomatic"].tolist() == [1.0, 0.0, 0.0]
    assert encoded["cp=typical angina"].tolist() == [0.0, 1.0, 0.0]
    assert encode_label(frame(), "num", 0).tolist() == [0, 1, 1]


def test_window_keeps_records_admitted_before_the_interval_end(tmp_path: Path) -> None:
    rows = pd.DataFrame({c: [1, 2, 3] for c in COLUMNS})
    rows["admission_date"] = ["2026-08-15", "2026-09-30", "2026-10-01"]
    path = tmp_path / "heart.csv"
    rows.to_csv(path, index=False)
    assert load_site_data(path, until=date(2026, 10, 1))["id"].tolist() == [1, 2]
    assert load_site_data(path, until=date(2026, 10, 1), window_months=1)["id"].tolist() == [2]
    with pytest.raises(FileNotFoundError, match=r"missing\.csv"):
        load_site_data(tmp_path / "missing.csv", until=date(2026, 10, 1))


def test_split_is_stratified_reproducible_and_complete() -> None:
    labels = np.array([0] * 60 + [1] * 40)
    train, val, test = split_indices(labels, (0.6, 0.2, 0.2), seed=3)
    assert (len(train), len(val), len(test)) == (60, 20, 20)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(100))
    assert labels[train].mean() == pytest.approx(0.4) and labels[test].mean() == pytest.approx(0.4)
    again = split_indices(labels, (0.6, 0.2, 0.2), seed=3)
    assert all((a == b).all() for a, b in zip((train, val, test), again, strict=True))
    other = split_indices(labels, (0.6, 0.2, 0.2), seed=4)
    assert not (other[0] == train).all()


def test_standardize_imputes_the_global_mean_and_scales_by_the_global_stddev() -> None:
    features = pd.DataFrame({"a": [1.0, np.nan, 5.0], "b": [2.0, 2.0, 2.0]})
    scaled = standardize(features, {"a": 3.0, "b": 2.0}, {"a": 2.0, "b": 0.0})
    assert scaled[:, 0].tolist() == [-1.0, 0.0, 1.0]
    assert scaled[:, 1].tolist() == [0.0, 0.0, 0.0]  # a zero stddev does not divide by zero
