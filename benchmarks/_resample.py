"""Synthetic hospital files for the scale benchmark: the demo records resampled, jittered and redated.

Only the benchmark uses this; the demo file is public data, so resampling it pools nothing of a site's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd

#: the noise added to a jittered numeric value: this fraction of the column's standard deviation
JITTER = 0.05


def _decimals(column: pd.Series) -> int:
    """Return how many decimals the column's values are written with (0 for integers)."""
    text = column[column.str.contains(".", regex=False)]
    return int(text.str.split(".").str[1].str.len().max()) if len(text) else 0


def _formatted(values: np.ndarray, decimals: int) -> np.ndarray:
    if decimals == 0:
        return values.astype(np.int64).astype(str)
    return pd.Series(values).map(f"{{:.{decimals}f}}".format).to_numpy()


def resample(
    template: pd.DataFrame, rows: int, *, seed: int, window: tuple[date, date], date_column: str,
    numeric: Sequence[str] = (), id_column: str | None = None, jitter: float = JITTER,
) -> pd.DataFrame:
    """Return ``rows`` records drawn with replacement from ``template`` (text, as the file writes it).

    Every column is kept. Each ``numeric`` value gets Gaussian noise (``jitter`` times the column's
    standard deviation), kept within the column's range and written with its decimals; an empty cell or
    a 0 (a missing value in ``zero_means_missing`` columns) stays as it is. ``date_column`` gets dates
    spread uniformly over ``window`` (start included, end excluded), ISO 8601; ``id_column`` becomes
    ``1 … rows``. The same arguments give the same records.

    :param template: the records to draw from, every cell text (``dtype=str``, empty cells empty)
    :param rows: how many records to return
    :param seed: the random seed
    :param window: the first day and the day after the last one
    :param date_column: the column dating each record
    :param numeric: the columns to jitter
    :param id_column: the record id column, renumbered (None: none)
    :param jitter: the noise's standard deviation as a fraction of the column's
    """
    start, end = window
    days = (end - start).days
    if days < 1:
        raise ValueError(f"empty window {start} .. {end}")
    rng = np.random.default_rng(seed)
    frame = template.iloc[rng.integers(0, len(template), rows)].reset_index(drop=True)
    for column in numeric:
        known = pd.to_numeric(template[column], errors="coerce")
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
        noisy = values + rng.normal(0.0, jitter * float(known.std()), rows)
        decimals = _decimals(template[column])
        noisy = np.clip(noisy, known.min(), known.max()).round(decimals)
        keep = ~np.isfinite(values) | (values == 0)
        frame[column] = np.where(keep, frame[column].to_numpy(), _formatted(np.nan_to_num(noisy), decimals))
    offsets = rng.integers(0, days, rows).astype("timedelta64[D]")
    frame[date_column] = (np.datetime64(start, "D") + offsets).astype(str)
    if id_column:
        frame[id_column] = np.arange(1, rows + 1).astype(str)
    return frame
