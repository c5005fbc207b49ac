"""The SHAP background: synthetic reference rows drawn from the federated statistics alone.

Every site gets the same background, built at the research centre from the global histograms (each
feature drawn independently from its global histogram), so no site's rows are ever shared.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def background_rows(stats: Mapping[str, Any], size: int, seed: int) -> np.ndarray:
    """Return ``size`` standardized background rows, one column per feature in model order.

    :param stats: the normalized federated statistics (see ``fl_tasks.stats.result``)
    :param size: the number of rows
    :param seed: the random seed
    """
    rng = np.random.default_rng(seed)
    columns = []
    for feature in stats["features"]:
        mean = stats["statistics"]["mean"][feature]["global"]
        stddev = stats["statistics"]["stddev"][feature]["global"] or 1.0
        bins = stats["histograms"].get(feature, {}).get("global")
        if bins:
            low, high, count = (np.asarray(c, dtype=float) for c in zip(*bins, strict=True))
            chosen = rng.choice(len(count), size=size, p=count / count.sum())
            raw = rng.uniform(low[chosen], high[chosen])
        else:  # no global histogram (withheld): every background row sits at the global mean
            raw = np.full(size, mean)
        columns.append((raw - mean) / stddev)
    return np.column_stack(columns)
