"""The site side of federated statistics: NVFlare's ``Statistics`` spec over this site's records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from nvflare.apis.fl_context import FLContext
from nvflare.app_common.abstract.statistics_spec import (
    Bin,
    DataType,
    Feature,
    Histogram,
    HistogramType,
    Statistics,
)

from fl_tasks.contract import Contract
from fl_tasks.data import encode_features, load_site_data, site_data_file
from fl_tasks.stats.bins import rank_groups

DATASET = "records"  # the one NVFlare dataset each site answers for: its windowed records


def numeric_features(feature_spec: Mapping[str, Any]) -> list[str]:
    """Return the numeric features of a ``data.features`` spec: ``numeric``, then ``zero_means_missing``.

    Each once, whether ``zero_means_missing`` lists numeric features or is a kind of its own.

    :param feature_spec: the ``data.features`` section of the job config
    """
    names = [*feature_spec.get("numeric", ()), *feature_spec.get("zero_means_missing", ())]
    return list(dict.fromkeys(names))


class SiteStatistics(Statistics):
    """Answer the server's statistics requests from this site's windowed, encoded records.

    :param data: the ``data`` section of the job config (the data contract)
    :param until: ISO date; records dated before it are used
    :param min_count: ``privacy.min_count``, the fewest records a rank group holds
    """

    def __init__(self, data: dict[str, Any], until: str, min_count: int = 1) -> None:
        super().__init__()
        # NVFlare exports a component by reading back its constructor arguments from attributes
        self.data = data
        self.until = until
        self.min_count = min_count
        self.contract = Contract.from_config(data)
        self.spec = self.contract.features
        self.numeric = numeric_features(data["features"])
        self.values: pd.DataFrame | None = None
        self._shared_cuts: dict[tuple[str, str], frozenset[float]] = {}

    def initialize(self, fl_ctx: FLContext) -> None:
        # the only place this module calls into fl_tasks.data
        root = Path(fl_ctx.get_engine().get_workspace().get_root_dir())
        frame = load_site_data(site_data_file(root, self.contract.file_name), self.contract,
                               until=date.fromisoformat(self.until))
        self.values = encode_features(frame, self.spec)

    def _column(self, feature: str) -> np.ndarray:
        assert self.values is not None, "initialize() loads the data first"
        column = self.values[feature].to_numpy(dtype=float)
        return column[~np.isnan(column)]

    def features(self) -> dict[str, list[Feature]]:
        assert self.values is not None, "initialize() loads the data first"
        return {DATASET: [Feature(str(name), DataType.FLOAT) for name in self.values.columns]}

    def count(self, dataset_name: str, feature_name: str) -> int:
        return int(self._column(feature_name).size)

    def sum(self, dataset_name: str, feature_name: str) -> float:
        return float(self._column(feature_name).sum())

    def mean(self, dataset_name: str, feature_name: str) -> float:
        values = self._column(feature_name)
        return float(values.mean()) if values.size else float("nan")

    def stddev(self, dataset_name: str, feature_name: str) -> float:
        values = self._column(feature_name)
        return float(values.std(ddof=1)) if values.size > 1 else float("nan")

    def variance_with_mean(
        self, dataset_name: str, feature_name: str, global_mean: float, global_count: float
    ) -> float:
        values = self._column(feature_name)
        return float(((values - global_mean) ** 2).sum() / (global_count - 1))

    def min_value(self, dataset_name: str, feature_name: str) -> float:
        return float(self._column(feature_name).min())

    def max_value(self, dataset_name: str, feature_name: str) -> float:
        return float(self._column(feature_name).max())

    def histogram(
        self, dataset_name: str, feature_name: str, num_of_bins: int, global_min_value: float,
        global_max_value: float,
    ) -> Histogram:
        counts, edges = np.histogram(
            self._column(feature_name), bins=num_of_bins, range=(global_min_value, global_max_value)
        )
        return _histogram(edges, counts)

    def rank_groups(self, dataset_name: str, feature_name: str) -> list[list[float]] | None:
        """Return a numeric feature's rank groups (``fl_tasks.stats.bins.rank_groups``), None for others.

        :param dataset_name: the dataset
        :param feature_name: the encoded feature
        """
        if feature_name not in self.numeric:
            return None
        return rank_groups(self._column(feature_name), self.min_count)

    def histogram_on_edges(
        self, dataset_name: str, feature_name: str, edges: Sequence[float], shared_cuts: Sequence[float]
    ) -> Histogram:
        """Count the records on the shared edges; remember the cuts planned for every site.

        :param dataset_name: the dataset
        :param feature_name: the encoded feature
        :param edges: the shared edges, strictly increasing (the last bin includes its high edge)
        :param shared_cuts: the inner edges every site should keep (``fl_tasks.stats.bins``)
        """
        self._shared_cuts[(dataset_name, feature_name)] = frozenset(float(cut) for cut in shared_cuts)
        counts, bin_edges = np.histogram(self._column(feature_name), bins=np.asarray(edges, dtype=float))
        return _histogram(bin_edges, counts)

    def shared_cuts(self, dataset_name: str, feature_name: str) -> frozenset[float]:
        """Return the cuts the server planned for every site's histogram of the feature (none by default).

        :param dataset_name: the dataset
        :param feature_name: the encoded feature
        """
        return self._shared_cuts.get((dataset_name, feature_name), frozenset())


def _histogram(edges: np.ndarray, counts: np.ndarray) -> Histogram:
    bins = [Bin(float(lo), float(hi), int(n)) for lo, hi, n in zip(edges[:-1], edges[1:], counts, strict=True)]
    return Histogram(HistogramType.STANDARD, bins)
