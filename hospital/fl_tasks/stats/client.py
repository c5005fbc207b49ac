"""The site side of federated statistics: NVFlare's ``Statistics`` spec over this site's records."""

from __future__ import annotations

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

DATASET = "heart"


class SiteStatistics(Statistics):
    """Answer the server's statistics requests from this site's windowed, encoded records.

    :param data: the ``data`` section of the job config (the data contract)
    :param until: ISO date; records dated before it are used
    """

    def __init__(self, data: dict[str, Any], until: str) -> None:
        super().__init__()
        # NVFlare exports a component by reading back its constructor arguments from attributes
        self.data = data
        self.until = until
        self.contract = Contract.from_config(data)
        self.spec = self.contract.features
        self.values: pd.DataFrame | None = None

    def initialize(self, fl_ctx: FLContext) -> None:
        root = Path(fl_ctx.get_engine().get_workspace().get_root_dir())
        frame = load_site_data(site_data_file(root, self.contract.file_name), self.contract,
                               until=date.fromisoformat(self.until))
        self.values = encode_features(frame, self.spec)

    def _column(self, feature: str) -> np.ndarray:
        assert self.values is not None, "initialize() loads the data first"
        column = self.values[feature].to_numpy(dtype=float)
        return column[~np.isnan(column)]

    def features(self) -> dict[str, list[Feature]]:
        return {DATASET: [Feature(name, DataType.FLOAT) for name in self.spec.columns]}

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
        bins = [Bin(float(lo), float(hi), int(n)) for lo, hi, n in zip(edges[:-1], edges[1:], counts, strict=True)]
        return Histogram(HistogramType.STANDARD, bins)
