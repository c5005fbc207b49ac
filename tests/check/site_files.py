"""A small data contract in the spec's shape and good site files for it, to break one way at a time.

The column names are the tests' own: nothing in product code may depend on a dataset's names.
"""

from __future__ import annotations

import copy
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

#: the end of the run's window the tests check against
UNTIL = date(2026, 11, 1)
ROWS = 40

DATA: dict[str, Any] = {
    "file_name": "records.csv",
    "delimiter": ",",
    "id_column": "record_id",
    "date_column": "visit_date",
    "date_format": None,
    "label": {"column": "outcome", "positive_above": 0},
    "features": {
        "numeric": ["age", "weight"],
        "zero_means_missing": ["pressure"],
        "binary": {"smoker": "yes", "female": 1},
        "categorical": {"region": ["north", "south", "east"], "stage": [1, 2, 3]},
    },
    "window_months": None,
    "split": {"train": 0.6, "validation": 0.2, "test": 0.2},
}


def data_section(**changes: Any) -> dict[str, Any]:
    """Return a copy of :data:`DATA` with top-level keys changed."""
    return {**copy.deepcopy(DATA), **changes}


def good_records(rows: int = ROWS) -> pd.DataFrame:
    """Return records that keep the contract: every kind, some missing values, both label classes."""
    first = UNTIL - timedelta(days=rows * 7)
    return pd.DataFrame({
        "record_id": [str(1000 + i) for i in range(rows)],
        "visit_date": [(first + timedelta(days=7 * i)).isoformat() for i in range(rows)],
        "outcome": [str(i % 3) for i in range(rows)],  # 0, 1, 2: positive above 0
        "age": [str(40 + i % 30) if i % 10 else "" for i in range(rows)],  # every 10th missing
        "weight": [f"{60 + (i * 7) % 40}.5" for i in range(rows)],
        "pressure": [str(120 + i % 20) if i % 5 else "0" for i in range(rows)],  # every 5th: 0 = missing
        "smoker": ["Yes" if i % 4 == 0 else "no" for i in range(rows)],
        "female": [str(i % 2) for i in range(rows)],
        "region": [["north", "South ", "EAST"][i % 3] for i in range(rows)],  # canonical comparison
        "stage": [["1", "2.0", "3"][i % 3] for i in range(rows)],
        "name": [f"patient {i}" for i in range(rows)],  # not in the contract: never read
    })


def write(records: pd.DataFrame, path: Path, delimiter: str = ",") -> Path:
    """Write records as a site's CSV file; return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    records.to_csv(path, index=False, sep=delimiter)
    return path
