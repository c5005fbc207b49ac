"""Draft the config's ``data`` section and sites from the columns' profiles.

Every choice a person should look at gets a note, which the rendered YAML shows as a comment beside
the key: which value of a binary column means 1, the label's rule, a zero that may mark a missing
value, the columns left out and why.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flareflow.init_config.columns import Column, InferenceError, Label, canonical, positive_of
from flareflow.site_names import site_slug

_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\.csv$")
_LEFT_OUT = {
    "text": "text with more distinct values than a categorical may have",
    "empty": "no values",
    "constant": "a single value",
    "distinct": "a different whole number in every record: an id? (--id-column)",
    "date": "dates (only the date column places records in time)",
    "id": "a record id",
    "site": "names hospitals",
}


@dataclass(frozen=True)
class Options:
    """What ``flareflow init-config`` was asked for.

    :param data: the data file, sample file or data dictionary
    :param site_column: the column naming each record's hospital
    :param label: the label column
    :param date_column: the column dating each record (None: every run uses every record)
    :param id_column: the record id column
    :param delimiter: the file's field separator (also written as ``data.delimiter``)
    :param max_categories: the most distinct values a categorical column may have
    :param positive_above: the label is positive above this (overrides the proposed rule)
    :param positive_values: the label is positive when one of these (overrides the proposed rule)
    :param name: names the MLflow experiment and registered model (default: from the file's name)
    :param file_name: each hospital's data file name (default: the input's name)
    """

    data: Path
    site_column: str
    label: str
    date_column: str | None = None
    id_column: str | None = None
    delimiter: str = ","
    max_categories: int = 12
    positive_above: float | None = None
    positive_values: tuple[Label, ...] = ()
    name: str | None = None
    file_name: str | None = None

    @property
    def roles(self) -> dict[str, str | None]:
        """Return the columns with a role (not features): site, label, date, id."""
        return {"site column": self.site_column, "label": self.label, "date column": self.date_column,
                "id column": self.id_column}


@dataclass
class Draft:
    """The drafted config: sites, the data section, and the notes to show beside its keys.

    :param sites: the site names, sorted
    :param hospitals: each site -> the hospital names in the data giving it
    :param data: the config's ``data`` section
    :param name: the name of the MLflow experiment and registered model
    :param notes: dotted key below ``data`` (or ``federation.sites``) -> a comment
    :param left_out: columns that are no feature, with the reason
    """

    sites: list[str]
    hospitals: dict[str, list[str]]
    data: dict[str, Any]
    name: str
    notes: dict[str, str] = field(default_factory=dict)
    left_out: list[tuple[str, str]] = field(default_factory=list)


def _sites(column: Column) -> tuple[list[str], dict[str, list[str]]]:
    if not column.labels:
        raise InferenceError(f"site column {column.name!r}: no hospitals (a data dictionary lists them in values)")
    hospitals: dict[str, list[str]] = {}
    problems = []
    for name in column.labels:
        try:
            hospitals.setdefault(site_slug(str(name)), []).append(str(name))
        except ValueError as err:
            problems.append(str(err))
    problems += [f"hospitals {names} all become site {slug!r}" for slug, names in hospitals.items() if len(names) > 1]
    if problems:
        raise InferenceError(f"site column {column.name!r}: " + "; ".join(problems))
    return sorted(hospitals), {slug: hospitals[slug] for slug in sorted(hospitals)}


def _label_rule(column: Column, options: Options) -> tuple[dict[str, Any], str]:
    """Return the label section and its note."""
    if options.positive_above is not None:
        return {"column": column.name, "positive_above": options.positive_above}, "as given"
    if options.positive_values:
        return {"column": column.name, "positive_values": list(options.positive_values)}, "as given"
    if column.kind == "binary":
        positive = positive_of(column)
        others = [label for label in column.labels if canonical(label) != canonical(positive)]
        return ({"column": column.name, "positive_values": [positive]},
                f"values {_listing(column.labels)}: {positive} is positive, {others[0]} negative")
    if column.kind == "categorical" and column.integer_codes:
        lowest = min(int(canonical(label)) for label in column.labels)  # type: ignore[call-overload]
        return ({"column": column.name, "positive_above": lowest},
                f"positive above {lowest}, the lowest of its codes {_listing(column.labels)}: check the threshold")
    if column.kind in ("numeric", "zero_means_missing"):
        raise InferenceError(f"label {column.name!r} holds measurements, not classes: give the threshold "
                             f"above which it is positive (--positive-above)")
    raise InferenceError(f"label {column.name!r} is {column.kind} ({len(column.labels)} values): give the "
                         f"values that are positive (--positive-values)")


def _listing(labels: Sequence[Label]) -> str:
    return " / ".join(str(label) for label in labels)


def _features(columns: Sequence[Column], draft: Draft, from_dictionary: bool) -> dict[str, Any]:
    features: dict[str, Any] = {"numeric": [], "zero_means_missing": [], "binary": {}, "categorical": {}}
    seen = "declared" if from_dictionary else "seen in the data"
    for column in columns:
        key = f"features.{column.kind}.{column.name}"
        if column.kind in ("numeric", "zero_means_missing"):
            features[column.kind].append(column.name)
            notes = []
            if column.zero_suspect:
                notes.append("0 sits far below its other values: if it marks a missing value, move the "
                             "column to zero_means_missing")
            if column.some_text:
                notes.append("some values are not numbers: the data check fails on them (clean them, or "
                             "leave them empty)")
            if notes:
                draft.notes[key] = "; ".join(notes)
        elif column.kind == "binary":
            positive = positive_of(column)
            features["binary"][column.name] = positive
            if {canonical(label) for label in column.labels} != {0, 1}:
                draft.notes[key] = f"{_listing(column.labels)}: {positive} means 1"
        elif column.kind == "categorical":
            features["categorical"][column.name] = list(column.labels)
            draft.notes["features.categorical"] = f"column: its categories, {seen}; add any a hospital may hold"
            if column.integer_codes:
                draft.notes[key] = "integer codes"
        else:
            draft.left_out.append((column.name, _LEFT_OUT.get(column.kind, column.kind)))
    if not any(features.values()):
        raise InferenceError("no column is usable as a feature (numbers, two values, or a few categories)")
    return features


def _file_name(options: Options, from_dictionary: bool) -> str:
    if options.file_name:
        return options.file_name
    name = options.data.name
    return name if _FILE_NAME.match(name) and not from_dictionary else "data.csv"


def _default_name(data: Path, from_dictionary: bool) -> str:
    """Return a name for the MLflow experiment and model: the file's (a dictionary's: its folder's)."""
    stem = re.sub(r"(?i)[-_ .]*(data[-_ ]?)?dictionary[-_ .]*", "", data.stem) if from_dictionary else data.stem
    try:
        return site_slug(stem or data.resolve().parent.name)
    except ValueError:
        return "flareflow"


def draft_config(columns: Sequence[Column], options: Options, *, from_dictionary: bool = False) -> Draft:
    """Return the drafted sites and data section; fail naming every missing or repeated role column.

    :param columns: every column of the input, profiled
    :param options: what was asked for
    :param from_dictionary: the columns come from a data dictionary (not from values)
    """
    by_name = {column.name: column for column in columns}
    roles = {role: name for role, name in options.roles.items() if name}
    missing = [f"{role} {name!r}" for role, name in roles.items() if name not in by_name]
    if missing:
        raise InferenceError(f"{options.data}: no column {', '.join(missing)}; its columns: {list(by_name)}")
    names = list(roles.values())
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InferenceError(f"a column may have one role only: {repeated} is given for several")

    sites, hospitals = _sites(by_name[options.site_column])
    name = options.name or _default_name(options.data, from_dictionary)
    draft = Draft(sites=sites, hospitals=hospitals, data={}, name=name)
    label, draft.notes["label"] = _label_rule(by_name[options.label], options)
    date_format = None
    if options.date_column:
        dates = by_name[options.date_column]
        date_format = dates.date_format
        if not dates.dates_read:
            draft.notes["date_format"] = "the dates read neither as ISO 8601 nor in a common format: set it"
        elif date_format:
            draft.notes["date_format"] = "as the dates in the data are written"
    features = _features([c for c in columns if c.name not in names], draft, from_dictionary)
    draft.data = {
        "file_name": _file_name(options, from_dictionary),
        "delimiter": options.delimiter,
        "id_column": options.id_column,
        "date_column": options.date_column,
        "date_format": date_format,
        "label": label,
        "features": features,
        "window_months": None,
        "split": {"train": 0.6, "validation": 0.2, "test": 0.2},
    }
    return draft
