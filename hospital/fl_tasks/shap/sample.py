"""Which of a site's rows SHAP explains: all of them, or a seeded sample stratified by label.

The SHAP cost grows with the rows explained, so ``shap.max_rows`` bounds it: a site holding more rows
explains a sample of that many, drawn without replacement within each label (proportional allocation,
at least two rows per label that has two, so that each label's spread can be estimated). Only the cheap
work touches every row: reading the file and encoding the label; features are encoded and standardized
for the sampled rows alone. The estimate and its error are :mod:`fl_tasks.shap.estimate`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from fl_tasks.contract import Contract
from fl_tasks.data import encode_features, encode_label, load_site_data, site_data_file, standardize

#: the fewest rows a label stratum is given when it has them (a variance needs two)
MIN_PER_STRATUM = 2


def allocate(counts: np.ndarray, total: int) -> np.ndarray:
    """Return how many rows to draw from each stratum: ``total`` split in proportion to ``counts``.

    Largest remainders round the shares; then each stratum is raised to ``min(count, 2)`` rows, taken
    from the stratum drawing the most, when ``total`` allows it.

    :param counts: the rows each stratum holds
    :param total: the rows to draw; at least ``counts.sum()`` draws every row
    """
    counts = np.asarray(counts, dtype=int)
    if total >= counts.sum():
        return counts.copy()
    share = counts * total / counts.sum()
    taken = np.floor(share).astype(int)
    order = np.argsort(-(share - taken), kind="stable")
    taken[order[: total - taken.sum()]] += 1
    floor = np.minimum(counts, MIN_PER_STRATUM)
    if floor.sum() <= total:
        while (short := np.flatnonzero(taken < floor)).size:
            taken[short[0]] += 1
            taken[np.argmax(taken - floor)] -= 1
    return taken


def sample_rows(labels: np.ndarray, max_rows: int | None, seed: int) -> np.ndarray:
    """Return the sorted indices of the rows to explain, stratified by label; the same for the same seed.

    :param labels: every row's label
    :param max_rows: the most rows to explain; ``None`` (or at least the row count): every row
    :param seed: the random seed (the config's ``training.seed``)
    """
    labels = np.asarray(labels)
    if max_rows is None or max_rows >= len(labels):
        return np.arange(len(labels))
    values, counts = np.unique(labels, return_counts=True)
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(labels == value), size=k, replace=False)
              for value, k in zip(values, allocate(counts, max_rows), strict=True)]
    return np.sort(np.concatenate(chosen))


def stratum_rows(labels: np.ndarray) -> dict[int, int]:
    """Return the rows each label holds: the population each stratum's sample stands for."""
    values, counts = np.unique(np.asarray(labels), return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True)}


@dataclass(frozen=True)
class Sample:
    """The rows a site explains.

    :param x: their standardized features, in model order
    :param labels: their labels
    :param strata: label -> the rows the site holds with it (labelled rows of the run's window)
    """

    x: np.ndarray
    labels: np.ndarray
    strata: dict[int, int]

    @property
    def rows(self) -> int:
        """The rows the site holds, sampled or not."""
        return sum(self.strata.values())


def load_sample(workspace_root: Path, settings: Mapping[str, Any]) -> Sample:
    """Return the rows this site explains, as a job's client sees them (see ``fl_tasks.data.load_model_inputs``).

    :param workspace_root: the site's NVFlare workspace root
    :param settings: the client settings of the SHAP job (``data``, ``until``, ``means``, ``stddevs``,
        ``shap.max_rows``, ``seed``)
    """
    contract = Contract.from_config(settings["data"])
    frame = load_site_data(site_data_file(workspace_root, contract.file_name), contract,
                           until=date.fromisoformat(settings["until"]))
    encoded = encode_label(frame[contract.label.column], contract.label)
    known = np.flatnonzero(~np.isnan(encoded))
    labels = encoded[known].astype(int)
    chosen = sample_rows(labels, settings["shap"]["max_rows"], settings["seed"])
    features = encode_features(frame.iloc[known[chosen]].reset_index(drop=True), contract.features)
    return Sample(standardize(features, settings["means"], settings["stddevs"]), labels[chosen],
                  stratum_rows(labels))
