"""A site's own data, read through the data contract: locate, read, window, encode, split, standardize.

Everything here runs at one hospital, on that hospital's rows only. The file is read once, only the
contract's columns, every value as text (pandas' default string dtype); each column is then parsed for
its kind. The encoding follows the contract (never another site's data), so every site produces the same
columns in the same order (see :attr:`fl_tasks.contract.FeatureSpec.columns`).
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

from fl_tasks.contract import Contract, FeatureSpec, LabelRule, canonical

__all__ = [
    "SITE_DATA_DIR", "SITE_DATA_ENV", "Contract", "Encoded", "FeatureSpec", "SiteFileError", "canonical_codes",
    "encode", "encode_features", "encode_label", "given", "load_model_inputs", "load_site_data", "model_inputs",
    "numbers", "parse_dates", "read_header", "read_site_file", "site_data_file", "split_indices", "standardize",
    "window_mask",
]

#: Where a site keeps its data, relative to its NVFlare workspace root.
SITE_DATA_DIR = Path("local") / "flareflow"
#: A site may point elsewhere with this environment variable (a folder holding the data file).
SITE_DATA_ENV = "FLAREFLOW_SITE_DATA_DIR"
#: The date format meaning ISO 8601 to pandas.
ISO8601 = "ISO8601"


class SiteFileError(ValueError):
    """A site's file lacks what the contract needs (the federated data check says what, per column)."""


def site_data_file(workspace_root: Path, file_name: str) -> Path:
    """Return the path of this site's data file.

    :param workspace_root: the site's NVFlare workspace root
    :param file_name: the data file's name from the contract
    """
    folder = os.environ.get(SITE_DATA_ENV)
    base = Path(folder) if folder else workspace_root / SITE_DATA_DIR
    return base / file_name


# -- reading ------------------------------------------------------------------------------------------
def _csv_options(contract: Contract) -> dict[str, Any]:
    # utf-8-sig: a byte order mark (as spreadsheet programs write) is not part of the first column's name;
    # index_col=False: a row with a trailing delimiter never turns the first column into the index
    return {"sep": contract.delimiter, "encoding": "utf-8-sig", "index_col": False}


def read_header(path: Path, contract: Contract) -> list[str]:
    """Return the column names of a site's file (its header line only).

    :param path: the site's data file
    :param contract: the data contract (for the delimiter)
    :raises FileNotFoundError: no such file
    :raises pandas.errors.EmptyDataError: the file is empty (no header)
    :raises UnicodeDecodeError, pandas.errors.ParserError, OSError: the file cannot be read as CSV text
    """
    if not path.is_file():
        raise FileNotFoundError(f"site data file not found: {path}")
    return [str(column) for column in pd.read_csv(path, nrows=0, **_csv_options(contract)).columns]


def read_site_file(path: Path, contract: Contract, header: Sequence[str] | None = None) -> pd.DataFrame:
    """Read the contract's columns that a site's file holds, every value as text (missing: NA).

    Apart from the header, no other column is ever read. A file holding no contract column gives a
    frame without columns (and without rows).

    :param path: the site's data file
    :param contract: the data contract
    :param header: the file's header, if already read (see :func:`read_header`)
    :raises: as :func:`read_header`
    """
    present = set(read_header(path, contract) if header is None else header)
    wanted = [column for column in contract.columns if column in present]
    return pd.read_csv(path, usecols=wanted, dtype=str, **_csv_options(contract))


def parse_dates(values: pd.Series, date_format: str | None) -> pd.Series:
    """Parse a date column once: UTC timestamps, NaT where a value is missing or does not parse.

    :param values: the column as read
    :param date_format: its strftime format, or None for ISO 8601
    """
    return pd.to_datetime(values, format=date_format or ISO8601, errors="coerce", utc=True)


def window_mask(dates: pd.Series, until: date, window_months: int | None) -> np.ndarray:
    """Return which records fall in the run's window: dated before ``until`` (and within the months).

    :param dates: the parsed dates (NaT: never in the window)
    :param until: exclusive upper bound, the end of the run's data interval
    :param window_months: if set, only the last this many months before ``until``
    """
    end = pd.Timestamp(until, tz="UTC")
    keep = (dates < end).to_numpy(dtype=bool)
    if window_months is not None:
        keep = keep & (dates >= end - pd.DateOffset(months=window_months)).to_numpy(dtype=bool)
    return keep


def load_site_data(path: Path, contract: Contract, *, until: date) -> pd.DataFrame:
    """Return a site's records in the run's window: the contract's columns, as text.

    Without a date column every record is in the window.

    :param path: the site's data file
    :param contract: the data contract
    :param until: exclusive upper bound on the record date (the end of the run's data interval)
    :raises SiteFileError: the file lacks contract columns
    """
    frame = read_site_file(path, contract)
    missing = [column for column in contract.columns if column not in frame.columns]
    if missing:
        raise SiteFileError(f"{path}: missing columns {missing}")
    if contract.date_column is None:
        return frame
    keep = window_mask(parse_dates(frame[contract.date_column], contract.date_format), until,
                       contract.window_months)
    return frame if keep.all() else frame.loc[keep].reset_index(drop=True)


# -- encoding -----------------------------------------------------------------------------------------
def given(values: pd.Series, candidates: np.ndarray) -> np.ndarray:
    """Return which of the ``candidates`` rows hold a value (not NA, not blank).

    :param values: a column as read
    :param candidates: the rows to look at (e.g. those whose value did not parse)
    """
    rows = candidates & values.notna().to_numpy(dtype=bool)
    if rows.any() and (values.dtype == object or pd.api.types.is_string_dtype(values.dtype)):
        rows[rows] = values[rows].astype(str).str.strip().ne("").to_numpy(dtype=bool)
    return rows


def numbers(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Parse a numeric column: its values as floats (NaN: missing or not a number) and where they do not parse.

    :param values: the column as read
    """
    parsed = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan, copy=True)
    return parsed, given(values, np.isnan(parsed))


def canonical_codes(values: pd.Series) -> tuple[np.ndarray, dict[str, int]]:
    """Return each value's index among the column's distinct canonical forms (-1: missing), and those forms.

    The canonical form (see :func:`fl_tasks.contract.canonical`) is computed once per distinct value.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    forms = [canonical(value) for value in uniques]
    index: dict[str, int] = {}
    for form in forms:
        if form:
            index.setdefault(form, len(index))
    remap = np.array([index.get(form, -1) for form in forms] + [-1], dtype=np.int64)
    return remap[codes], index  # code -1 (NA) picks the trailing -1


def _indicator(codes: np.ndarray, positive: int | None) -> np.ndarray:
    """Return 1.0 where ``codes`` is ``positive``, 0.0 elsewhere, NaN where missing."""
    encoded = (codes == positive).astype(float) if positive is not None else np.zeros(codes.size)
    encoded[codes < 0] = np.nan
    return encoded


@dataclass(frozen=True)
class Encoded:
    """A site's features encoded through the contract, with what did not fit it.

    :param features: the model features (float; NaN: missing), columns in model order
    :param unparseable: numeric column -> where its value is not a number
    :param unknown: categorical column -> values outside its categories; binary column -> its distinct
        non-missing values beyond two
    """

    features: pd.DataFrame
    unparseable: dict[str, np.ndarray]
    unknown: dict[str, int]


def encode(frame: pd.DataFrame, spec: FeatureSpec) -> Encoded:
    """Encode a site's records into the model features, noting values that break the contract.

    Numeric: the number (a zero of a ``zero_means_missing`` column is missing; a value that does not
    parse is NaN and noted). Binary: 1.0 where the canonical value equals the positive one, else 0.0.
    Categorical: one 0/1 indicator per category (all 0 for an unknown value, which is noted).

    :param frame: the site's records, as read
    :param spec: the contract's features
    """
    columns: dict[str, np.ndarray] = {}
    unparseable: dict[str, np.ndarray] = {}
    unknown: dict[str, int] = {}
    for name in (*spec.numeric, *spec.zero_means_missing):
        values, unparseable[name] = numbers(frame[name])
        if name in spec.zero_means_missing:
            values[values == 0] = np.nan
        columns[name] = values
    for name in sorted(spec.binary):
        codes, forms = canonical_codes(frame[name])
        positive = spec.binary[name]
        columns[name] = _indicator(codes, forms.get(canonical(positive)))
        unknown[name] = max(0, len(forms) - 2)
    for name in sorted(spec.categorical):
        codes, forms = canonical_codes(frame[name])
        categories = spec.categorical[name]
        known = [forms.get(canonical(category)) for category in categories]
        for category, code in zip(categories, known, strict=True):
            columns[f"{name}={category}"] = _indicator(codes, code)
        unknown[name] = int(((codes >= 0) & ~np.isin(codes, [c for c in known if c is not None])).sum())
    features = pd.DataFrame(columns, index=frame.index)  # built in model order
    return Encoded(features, unparseable, unknown)


def encode_features(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """Return a site's model features (float; NaN: missing), columns in model order (see :func:`encode`).

    :param frame: the site's records, as read
    :param spec: the contract's features
    """
    return encode(frame, spec).features


def encode_label(values: pd.Series, rule: LabelRule) -> np.ndarray:
    """Return the label as 1.0 (positive) / 0.0, NaN where it is missing (or, for a numeric rule, no number).

    :param values: the label column, as read
    :param rule: the contract's label rule
    """
    if rule.numeric:
        parsed, _ = numbers(values)
        encoded = (parsed > rule.positive_above).astype(float)
        encoded[np.isnan(parsed)] = np.nan
        return encoded
    codes, forms = canonical_codes(values)
    positives = [code for form, code in forms.items() if form in rule.positive_values]
    encoded = np.isin(codes, positives).astype(float)
    encoded[codes < 0] = np.nan
    return encoded


def model_inputs(frame: pd.DataFrame, contract: Contract) -> tuple[pd.DataFrame, np.ndarray]:
    """Return the model features and 0/1 labels of the records whose label is known.

    :param frame: the site's records in the run's window, as read
    :param contract: the data contract
    """
    labels = encode_label(frame[contract.label.column], contract.label)
    known = ~np.isnan(labels)
    features = encode_features(frame, contract.features)
    if known.all():
        return features.reset_index(drop=True), labels.astype(int)
    return features.loc[known].reset_index(drop=True), labels[known].astype(int)


# -- splitting and scaling ----------------------------------------------------------------------------
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
    values = features.to_numpy(dtype=float, copy=True)
    rows, cols = np.nonzero(np.isnan(values))
    values[rows, cols] = mu[cols]
    values -= mu
    values /= sigma
    return values


def load_model_inputs(workspace_root: Path, settings: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Return this site's standardized features and labels for the run, as a job's client sees them.

    Records without a label are left out.

    :param workspace_root: the site's NVFlare workspace root
    :param settings: the client settings of the job (``data`` section, ``until``, global mean/stddev)
    """
    contract = Contract.from_config(settings["data"])
    frame = load_site_data(site_data_file(workspace_root, contract.file_name), contract,
                           until=date.fromisoformat(settings["until"]))
    features, labels = model_inputs(frame, contract)
    del frame
    return standardize(features, settings["means"], settings["stddevs"]), labels
