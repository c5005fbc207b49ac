"""A hospital's side of the data check: its own file against the contract, reported as counts, never values.

The report (JSON-safe) holds the file's status (``found``, ``missing``, ``empty``, ``unreadable``), rows
in the file and in the run's window, missing columns, and per column: values that do not parse for its
kind, unknown categories, the share of missing values. Then the label classes present in the window
(0/1 after the contract's rule) and how many labels are missing there, how many record ids repeat an
earlier one, and a suspected other delimiter. Checking never raises on a bad file: the report says
what is wrong, and the research centre's rules (``fl_tasks.check.rules``) decide.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fl_tasks.contract import CATEGORICAL, Contract, FeatureSpec
from fl_tasks.data import (
    encode,
    encode_label,
    given,
    numbers,
    parse_dates,
    read_header,
    read_site_file,
    site_data_file,
    window_mask,
)

FOUND, MISSING, EMPTY, UNREADABLE = "found", "missing", "empty", "unreadable"
#: separators a file may use instead of the configured one, as the report names them
DELIMITERS: dict[str, str] = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}

Report = dict[str, Any]


def site_report(workspace_root: Path, settings: dict[str, Any]) -> Report:
    """Check this site's file for the run, as the check job's client does.

    :param workspace_root: the site's NVFlare workspace root
    :param settings: the check job's client settings (``data`` section, ``until``)
    """
    contract = Contract.from_config(settings["data"])
    return check_site_file(site_data_file(workspace_root, contract.file_name), contract,
                           date.fromisoformat(settings["until"]))


def new_report(contract: Contract, until: date, file: str = FOUND, reason: str | None = None) -> Report:
    """Return a report with nothing found yet: what was checked against, and the file's status.

    :param contract: the data contract
    :param until: the end of the run's window
    :param file: the file's status
    :param reason: why the file cannot be read, if it cannot
    """
    return {
        **_blank(contract.file_name, file, reason), "delimiter": contract.delimiter,
        "date_column": contract.date_column, "date_format": contract.date_format, "until": until.isoformat(),
        "window_months": contract.window_months,
    }


def failed_report(settings: dict[str, Any], reason: str) -> Report:
    """Return the report of a site whose check itself failed (the file counts as unreadable).

    :param settings: the check job's client settings
    :param reason: what failed, in words (never a value from the file)
    """
    data = settings.get("data", {})
    return {**_blank(data.get("file_name"), UNREADABLE, reason), "delimiter": data.get("delimiter"),
            "date_column": data.get("date_column"), "date_format": data.get("date_format"),
            "until": settings.get("until"), "window_months": data.get("window_months")}


def _blank(file_name: str | None, file: str, reason: str | None) -> Report:
    return {"file": file, "reason": reason, "file_name": file_name, "suspected_delimiter": None,
            "rows_in_file": None, "rows_in_window": None, "missing_columns": [], "columns": {},
            "label_classes": [], "label_missing": None, "duplicated_ids": None}


def check_site_file(path: Path, contract: Contract, until: date) -> Report:
    """Check a site's file against the contract for a run ending at ``until``; return the report.

    :param path: the site's data file
    :param contract: the data contract
    :param until: the end of the run's data interval (exclusive)
    """
    try:
        header = read_header(path, contract)
        frame = read_site_file(path, contract, header)
    except FileNotFoundError:
        return new_report(contract, until, MISSING)
    except pd.errors.EmptyDataError:
        return new_report(contract, until, EMPTY)
    except UnicodeDecodeError:
        return new_report(contract, until, UNREADABLE, "not UTF-8 text")
    except pd.errors.ParserError:
        return new_report(contract, until, UNREADABLE, f"not CSV separated by {contract.delimiter!r}")
    except OSError as err:
        return new_report(contract, until, UNREADABLE, f"cannot be opened ({type(err).__name__})")
    report = new_report(contract, until)
    report["suspected_delimiter"] = suspected_delimiter(header, contract.delimiter)
    report["missing_columns"] = [column for column in contract.columns if column not in frame.columns]
    if frame.columns.empty:  # no contract column in the header: the rows are not even counted
        return report
    report["rows_in_file"] = len(frame)
    _check_columns(frame, contract, until, report)
    return report


def suspected_delimiter(header: list[str], delimiter: str) -> str | None:
    """Return the separator a one-column header holds instead of the configured one, if any.

    :param header: the file's column names, split at the configured delimiter
    :param delimiter: the configured delimiter
    """
    if len(header) != 1:
        return None
    return next((d for d in DELIMITERS if d != delimiter and d in header[0]), None)


def duplicated(values: pd.Series) -> int:
    """Return how many records repeat an earlier record's value, compared in canonical form.

    Vectorized (ids are mostly distinct, too many to canonicalize one by one): integral numbers are
    compared as numbers (exactly, up to 2**53), everything else as stripped, lower-cased text.

    :param values: an id column, as read
    """
    text = values.dropna().astype(str).str.strip().str.lower()
    text = text[text != ""]
    number = pd.to_numeric(text, errors="coerce")
    integral = (number % 1 == 0) & (number.abs() < 2**53)  # NaN: False
    return int(number[integral].duplicated().sum() + text[~integral].duplicated().sum())


def _share(missing: np.ndarray, rows: np.ndarray) -> float | None:
    """Return the share of ``rows`` where ``missing`` holds (None when there are no rows)."""
    return float(missing[rows].mean()) if rows.any() else None


def _column(kind: str, *, unparseable: int = 0, unknown: int = 0, missing_share: float | None = None) -> dict:
    return {"kind": kind, "unparseable": int(unparseable), "unknown": int(unknown), "missing_share": missing_share}


def _check_columns(frame: pd.DataFrame, contract: Contract, until: date, report: Report) -> None:
    """Fill the report's window, id, label and per-column findings from the file's records."""
    columns: dict[str, dict] = {}
    window = _window(frame, contract, until, columns)
    if window is not None:
        report["rows_in_window"] = int(window.sum())
    else:  # the date column is missing: no record can be placed in the window
        window = np.zeros(len(frame), dtype=bool)
    if contract.id_column in frame.columns:
        ids = frame[contract.id_column]
        report["duplicated_ids"] = duplicated(ids)
        columns[contract.id_column] = _column("id", missing_share=_share(~given(ids, np.ones(len(ids), bool)), window))
    if contract.label.column in frame.columns:
        columns[contract.label.column] = _label(frame[contract.label.column], contract, window, report)
    columns.update(_feature_columns(frame, contract.features, window))
    report["columns"] = {column: columns[column] for column in contract.columns if column in columns}


def _window(frame: pd.DataFrame, contract: Contract, until: date, columns: dict[str, dict]) -> np.ndarray | None:
    """Return which records are in the run's window (None: the date column is missing); note the dates' findings.

    The date column's missing share is over the whole file: an undated record is never in a window.
    """
    if contract.date_column is None:
        return np.ones(len(frame), dtype=bool)
    if contract.date_column not in frame.columns:
        return None
    raw = frame[contract.date_column]
    dates = parse_dates(raw, contract.date_format)
    undated = dates.isna().to_numpy(dtype=bool)
    unparseable = given(raw, undated)
    columns[contract.date_column] = _column("date", unparseable=unparseable.sum(),
                                            missing_share=_share(undated & ~unparseable, np.ones_like(undated)))
    return window_mask(dates, until, contract.window_months)


def _label(values: pd.Series, contract: Contract, window: np.ndarray, report: Report) -> dict:
    """Return the label column's findings; note the label classes in the window and its missing labels."""
    labels = encode_label(values, contract.label)
    unparseable = numbers(values)[1] if contract.label.numeric else np.zeros(len(values), dtype=bool)
    missing = np.isnan(labels) & ~unparseable
    report["label_classes"] = sorted({int(v) for v in np.unique(labels[window & ~np.isnan(labels)])})
    report["label_missing"] = int((missing & window).sum())
    return _column("label", unparseable=unparseable.sum(), missing_share=_share(missing, window))


def _feature_columns(frame: pd.DataFrame, spec: FeatureSpec, window: np.ndarray) -> dict[str, dict]:
    """Return the findings of the feature columns the file holds (missing shares in the window)."""
    present = FeatureSpec(
        numeric=tuple(c for c in spec.numeric if c in frame.columns),
        zero_means_missing=tuple(c for c in spec.zero_means_missing if c in frame.columns),
        binary={c: v for c, v in spec.binary.items() if c in frame.columns},
        categorical={c: v for c, v in spec.categorical.items() if c in frame.columns},
    )
    encoded = encode(frame, present)
    kinds = present.kinds()
    found = {}
    for column in present.source_columns:
        # a categorical column's indicators are all missing together: its first one tells
        name = f"{column}={spec.categorical[column][0]}" if kinds[column] == CATEGORICAL else column
        unparseable = encoded.unparseable.get(column, np.zeros(len(frame), dtype=bool))
        found[column] = _column(kinds[column], unparseable=unparseable.sum(), unknown=encoded.unknown.get(column, 0),
                                missing_share=_share(np.isnan(encoded.features[name].to_numpy()) & ~unparseable,
                                                     window))
    return found
