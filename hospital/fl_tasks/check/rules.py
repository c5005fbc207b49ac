"""The research centre's side of the data check: which findings of a hospital's report break the contract.

A site breaks the contract when its file is missing, empty, unreadable or separated by another
delimiter; when it holds a header only; when a contract column is missing; when any value does not
parse for its column's kind or is an unknown category (for a binary column: more than two distinct
values); when a record id repeats; when no record falls in the run's window; or when the window holds
fewer than two label classes. Each problem names the hospital, the column (where one is at fault) and
what is wrong; :func:`problems` lists every hospital's problems at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fl_tasks.check.report import DELIMITERS, EMPTY, MISSING, UNREADABLE

NO_FILE, EMPTY_FILE, UNREADABLE_FILE = "no_file", "empty_file", "unreadable_file"
OTHER_DELIMITER, HEADER_ONLY, MISSING_COLUMN = "other_delimiter", "header_only", "missing_column"
UNPARSEABLE, UNKNOWN_CATEGORY, DUPLICATE_IDS = "unparseable", "unknown_category", "duplicate_ids"
NO_ROWS_IN_WINDOW, LABEL_CLASSES = "no_rows_in_window", "label_classes"


@dataclass(frozen=True)
class Problem:
    """One way a hospital's file breaks the contract.

    :param site: the hospital
    :param column: the column at fault, or None for the file as a whole
    :param code: what kind of problem (one of this module's constants)
    :param reason: what is wrong, in words (never a value from the file)
    """

    site: str
    column: str | None
    code: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.site}, column {self.column}" if self.column else self.site
        return f"{where}: {self.reason}"


def _counted(n: int, noun: str) -> str:
    """Return ``n`` with the noun, plural unless n is 1 (``3 values``)."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _file_problem(site: str, report: Mapping[str, Any]) -> Problem | None:
    """Return the problem with the file as a whole, if it cannot be checked at all."""
    name, status = report["file_name"], report["file"]
    if status == MISSING:
        return Problem(site, None, NO_FILE, f"no data file {name} in the site's data folder")
    if status == EMPTY:
        return Problem(site, None, EMPTY_FILE, f"{name} is empty (not even a header line)")
    if status == UNREADABLE:
        return Problem(site, None, UNREADABLE_FILE, f"{name} cannot be read: {report['reason']}")
    other = report.get("suspected_delimiter")
    if other:
        configured = report["delimiter"]
        return Problem(site, None, OTHER_DELIMITER,
                       f"the header of {name} reads as one column holding {DELIMITERS.get(other, repr(other))}s: "
                       f"its fields seem separated by {other!r}, but data.delimiter is {configured!r}")
    return None


def _column_problems(site: str, column: str, found: Mapping[str, Any], report: Mapping[str, Any]) -> list[Problem]:
    kind, problems = found["kind"], []
    if found["unparseable"]:
        what = ("a date in the format " + (report["date_format"] or "ISO 8601 (YYYY-MM-DD)")) if kind == "date" \
            else "a number"
        problems.append(Problem(site, column, UNPARSEABLE,
                                f"{_counted(found['unparseable'], 'unparseable value')} (not {what})"))
    if found["unknown"] and kind == "binary":
        problems.append(Problem(site, column, UNKNOWN_CATEGORY,
                                f"{_counted(found['unknown'], 'distinct value')} beyond the two of a binary column "
                                f"(its positive value and one other)"))
    elif found["unknown"]:
        problems.append(Problem(site, column, UNKNOWN_CATEGORY,
                                f"{_counted(found['unknown'], 'value')} outside its categories"))
    return problems


def _window(report: Mapping[str, Any]) -> str:
    months = report.get("window_months")
    within = f" and within the {months} months before it" if months else ""
    return f"dated before {report['until']}{within}"


def site_problems(site: str, report: Mapping[str, Any]) -> list[Problem]:
    """Return every way one hospital's report breaks the contract (empty: it keeps it).

    :param site: the hospital
    :param report: its data check report (see ``fl_tasks.check.report``)
    """
    whole_file = _file_problem(site, report)
    if whole_file:
        return [whole_file]
    problems = [Problem(site, column, MISSING_COLUMN, "missing from the file")
                for column in report["missing_columns"]]
    rows = report["rows_in_file"]
    if rows == 0:
        return [Problem(site, None, HEADER_ONLY, f"{report['file_name']} holds a header but no records"), *problems]
    for column, found in report["columns"].items():
        problems += _column_problems(site, column, found, report)
    if report["duplicated_ids"]:
        id_column = next(c for c, found in report["columns"].items() if found["kind"] == "id")
        problems.append(Problem(site, id_column, DUPLICATE_IDS,
                                f"{_counted(report['duplicated_ids'], 'duplicated record id')} "
                                f"(records repeating an earlier record's id)"))
    in_window = report["rows_in_window"]
    if in_window == 0 and rows:
        problems.append(Problem(site, report["date_column"], NO_ROWS_IN_WINDOW,
                                f"no record in the run's window ({_window(report)})"))
    label = next((c for c, found in report["columns"].items() if found["kind"] == "label"), None)
    if in_window and label is not None and len(report["label_classes"]) < 2:
        classes = report["label_classes"]
        what = f"only label class {classes[0]}" if classes else "no labelled record"
        problems.append(Problem(site, label, LABEL_CLASSES,
                                f"{what} in the run's window (after the positive rule); training needs both 0 and 1"))
    return problems


def problems(reports: Mapping[str, Mapping[str, Any]]) -> list[Problem]:
    """Return every hospital's problems, hospital by hospital.

    :param reports: hospital -> its data check report
    """
    return [problem for site, report in reports.items() for problem in site_problems(site, report)]
