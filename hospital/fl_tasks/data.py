"""A site's own data: locate, load, window by admission date, encode and split.

Everything here runs at one hospital, on that hospital's rows only. The encoding is driven by the
feature spec of the job config (never by another site's data), so every site produces the same
columns in the same order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Where a site keeps its data, relative to its NVFlare workspace root.
SITE_DATA_DIR = Path("local") / "flareflow"
#: A site may point elsewhere with this environment variable (a folder holding the data file).
SITE_DATA_ENV = "FLAREFLOW_SITE_DATA_DIR"


@dataclass(frozen=True)
class FeatureSpec:
    """Which columns become model features, and how.

    :param numeric: columns used as they are
    :param binary: column -> the value that encodes as 1
    :param categorical: column -> its categories, each becoming a 0/1 column ``column=category``
    :param zero_means_missing: numeric columns where 0 records a missing value
    """

    numeric: tuple[str, ...]
    binary: Mapping[str, str]
    categorical: Mapping[str, Sequence[str]]
    zero_means_missing: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, spec: Mapping[str, object]) -> FeatureSpec:
        """Build a spec from the ``data.features`` section of a job config."""
        return cls(
            numeric=tuple(spec["numeric"]),  # type: ignore[arg-type]
            binary=dict(spec["binary"]),  # type: ignore[arg-type]
            categorical={k: tuple(v) for k, v in dict(spec["categorical"]).items()},  # type: ignore[arg-type]
            zero_means_missing=tuple(spec.get("zero_means_missing", ())),  # type: ignore[arg-type]
        )

    @property
    def columns(self) -> list[str]:
        """Return the encoded feature names, in model order."""
        names = list(self.numeric) + list(self.binary)
        for column, categories in self.categorical.items():
            names += [f"{column}={category}" for category in categories]
        return names


def site_data_file(workspace_root: Path, file_name: str) -> Path:
    """Return the path of this site's data file.

    :param workspace_root: the site's NVFlare workspace root
    :param file_name: the data file's name from the config
    """
    folder = os.environ.get(SITE_DATA_ENV)
    base = Path(folder) if folder else workspace_root / SITE_DATA_DIR
    return base / file_name


def load_site_data(path: Path, *, until: date, window_months: int | None = None) -> pd.DataFrame:
    """Load a site's records admitted before ``until`` (the end of the run's data interval).

    :param path: the site's data file
    :param until: exclusive upper bound on the admission date
    :param window_months: if set, keep only the last this many months before ``until``
    """
    if not path.is_file():
        raise FileNotFoundError(f"site data file not found: {path}")
    frame = pd.read_csv(path, parse_dates=["admission_date"])
    admitted = frame["admission_date"].dt.date
    keep = admitted < until
    if window_months is not None:
        start = (pd.Timestamp(until) - pd.DateOffset(months=window_months)).date()
        keep &= admitted >= start
    return frame.loc[keep].reset_index(drop=True)


def _truthy(values: pd.Series, positive: str) -> pd.Series:
    """Encode a binary column as 1.0/0.0, keeping missing values missing."""
    text = values.astype("string").str.strip().str.lower()
    encoded = (text == positive.strip().lower()).astype(float)
    return encoded.where(values.notna())


def encode_features(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """Turn raw site records into the numeric feature matrix (missing values stay NaN).

    :param frame: the site's records
    :param spec: the feature spec of the job config
    """
    columns: dict[str, pd.Series] = {}
    for name in spec.numeric:
        values = pd.to_numeric(frame[name], errors="coerce").astype(float)
        if name in spec.zero_means_missing:
            values = values.mask(values == 0)
        columns[name] = values
    for name, positive in spec.binary.items():
        columns[name] = _truthy(frame[name], positive)
    for name, categories in spec.categorical.items():
        raw = frame[name]
        for category in categories:
            columns[f"{name}={category}"] = (raw == category).astype(float).where(raw.notna())
    return pd.DataFrame(columns, index=frame.index)[spec.columns]


def encode_label(frame: pd.DataFrame, label: str, positive_above: float) -> np.ndarray:
    """Return the 0/1 target: 1 where ``label`` is above ``positive_above``."""
    return (pd.to_numeric(frame[label]) > positive_above).to_numpy(dtype=int)


def split_indices(
    labels: np.ndarray, fractions: Sequence[float], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split row indices into train/validation/test, stratified by label, reproducibly.

    :param labels: the 0/1 target of every row
    :param fractions: train, validation and test fractions (summing to 1)
    :param seed: the random seed
    """
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for value in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == value))
        n_train = round(len(rows) * fractions[0])
        n_val = round(len(rows) * fractions[1])
        parts[0].append(rows[:n_train])
        parts[1].append(rows[n_train : n_train + n_val])
        parts[2].append(rows[n_train + n_val :])
    train, val, test = (np.sort(np.concatenate(p)) if p else np.array([], int) for p in parts)
    return train, val, test


def standardize(
    features: pd.DataFrame, means: Mapping[str, float], stddevs: Mapping[str, float]
) -> np.ndarray:
    """Impute missing values with the global mean and scale by the global stddev.

    :param features: the encoded site features
    :param means: global mean per feature, from federated statistics
    :param stddevs: global stddev per feature, from federated statistics
    """
    columns = list(features.columns)
    mu = np.array([means[c] for c in columns], dtype=float)
    sigma = np.array([stddevs[c] for c in columns], dtype=float)
    sigma[~np.isfinite(sigma) | (sigma <= 0)] = 1.0
    values = features.to_numpy(dtype=float)
    values = np.where(np.isnan(values), mu, values)
    return (values - mu) / sigma


def load_model_inputs(workspace_root: Path, settings: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Return this site's standardized features and labels for the run, as a job's client sees them.

    :param workspace_root: the site's NVFlare workspace root
    :param settings: the client settings of the job (data section, ``until``, global mean/stddev)
    """
    data = settings["data"]
    frame = load_site_data(site_data_file(workspace_root, data["file_name"]),
                           until=date.fromisoformat(settings["until"]), window_months=data["window_months"])
    features = encode_features(frame, FeatureSpec.from_dict(data["features"]))
    x = standardize(features, settings["means"], settings["stddevs"])
    return x, encode_label(frame, data["label"], data["label_positive_above"])
