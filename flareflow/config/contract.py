"""The data contract: the ``data`` section, which declares what every hospital's file must hold.

The research centre names the columns the pipeline uses and their kinds; each hospital checks its own
file against it (``fl_tasks``). What can be checked without the files is checked here: each column has
exactly one place (id, date, label or one feature kind), at least one feature, one positive rule for
the label, categories that a file can hold (text or integers, distinct in their canonical form, never
a YAML boolean or a string pandas reads as missing), a one-character delimiter, a date format that
parses dates with a year. No dataset's columns are named here: that is the config's business.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from fl_tasks.contract import canonical
from flareflow.config.base import Finding, Section, finding, raise_findings

#: the strings pandas reads as a missing value by default (``pandas._libs.parsers.STR_NA_VALUES``)
NA_STRINGS: frozenset[str] = frozenset({
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
    "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
})
_QUOTE_HINT = {True: '"true"', False: '"false"'}


_NA_CANONICAL = {canonical(s): s for s in NA_STRINGS}


def _yaml_scalar_hint(value: Any) -> str | None:
    """Return why YAML's reading of ``value`` is not what the writer meant, if it likely is not."""
    if isinstance(value, bool):
        return f"YAML reads this as a boolean, not text: quote it ({_QUOTE_HINT[value]})"
    if value is None:
        return 'YAML reads this as null (empty, ~ or null): quote it ("null") or give the value'
    return None


def _column_name(value: Any) -> Any:
    hint = _yaml_scalar_hint(value)
    if hint:
        raise ValueError(f"a column name is text; {hint}")
    if not isinstance(value, str):
        raise ValueError(f'a column name is text: quote it ("{value}")')
    if not value.strip():
        raise ValueError("empty column name")
    if value != value.strip():
        raise ValueError("a column name with leading or trailing spaces")
    if "=" in value:
        raise ValueError("a column name must not contain '=' (a category's indicator is named column=category)")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("a column name with a control character (a tab or a line break)")
    return value


def _value(value: Any) -> Any:
    hint = _yaml_scalar_hint(value)
    if hint:
        raise ValueError(hint)
    if isinstance(value, float):
        raise ValueError(f'a value is text or an integer, not a float: write it as a file holds it, quoted ("{value}")')
    if not isinstance(value, str | int):
        raise ValueError(f"a value is text or an integer, not a {type(value).__name__}")
    if not str(value).strip():
        raise ValueError("an empty value: an empty cell is a missing value")
    if canonical(value) in _NA_CANONICAL:
        raise ValueError(f"pandas reads {_NA_CANONICAL[canonical(value)]!r} as a missing value: "
                         "no record could hold this value")
    return value


def _distinct(values: list[str | int]) -> list[str | int]:
    if not values:
        raise ValueError("no values: list what this column holds")
    seen: dict[str, str | int] = {}
    for value in values:
        if canonical(value) in seen:
            first = seen[canonical(value)]
            if first == value:
                raise ValueError(f"{value!r} listed twice")
            raise ValueError(f"{first!r} and {value!r} are the same value (compared stripped, lower-cased, 1.0 as 1)")
        seen[canonical(value)] = value
    return values


def _file_name(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ValueError("must be a plain file name inside the site's data folder, such as data.csv")
    if name.startswith(".") or name != name.strip() or any(ord(c) < 32 for c in name):
        raise ValueError("must be a plain file name (no leading dot, spaces around it or control characters)")
    if len(name.encode()) > 255:
        raise ValueError("a file name of more than 255 bytes")
    return name


def _delimiter(text: str) -> str:
    if text in ("\\t", "\\\\t"):
        raise ValueError(r'a backslash and a t: for a tab write "\t" in double quotes')
    if len(text) != 1:
        raise ValueError("a delimiter is one character, such as ',' or ';'")
    if text in "\"'\r\n" or text.isalnum():
        raise ValueError("a delimiter cannot be a quote, a line break, a letter or a digit")
    return text


def _date_format(fmt: str) -> str:
    if not re.search(r"%[A-Za-z]", fmt):
        raise ValueError("a strftime format has % directives, such as %Y-%m-%d or %d.%m.%Y")
    sample = datetime(2026, 3, 14, 13, 45, 30)
    try:
        parsed = datetime.strptime(sample.strftime(fmt), fmt)
    except ValueError as err:
        raise ValueError(f"not a strftime format that parses its own dates: {err}") from err
    if parsed.year != sample.year:
        raise ValueError("a date format needs the year (%Y or %y) to place records in time")
    return fmt


ColumnName = Annotated[str, BeforeValidator(_column_name)]
Value = Annotated[str | int, BeforeValidator(_value)]
Values = Annotated[list[Value], AfterValidator(_distinct)]


class Label(Section):
    """The label column and the rule that makes a record positive (exactly one of the two rules)."""

    column: ColumnName
    positive_above: float | None = None
    positive_values: Values | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> Label:
        if (self.positive_above is None) == (self.positive_values is None):
            if self.positive_values is None:  # about the label as a whole
                raise_findings([finding("neither positive_above nor positive_values: give exactly one")])
            raise_findings([finding("both positive_above and positive_values: give exactly one",
                                    "positive_values", "positive_above")])
        return self


class Features(Section):
    """The features by kind; a category's value (or a binary's value for 1) as the file holds it."""

    numeric: list[ColumnName] = Field(default_factory=list)
    zero_means_missing: list[ColumnName] = Field(default_factory=list)
    binary: dict[ColumnName, Value] = Field(default_factory=dict)
    categorical: dict[ColumnName, Values] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _some_unique(self) -> Features:
        found: list[Finding] = []
        for kind in ("numeric", "zero_means_missing"):
            columns: list[str] = getattr(self, kind)
            for column in sorted({c for c in columns if columns.count(c) > 1}):
                found.append(finding(f"column {column!r} listed twice", kind, value=column))
        if not (self.numeric or self.zero_means_missing or self.binary or self.categorical):
            found.append(finding("no features: give at least one numeric, zero_means_missing, binary or "
                                 "categorical column", "numeric", "zero_means_missing", "binary", "categorical"))
        raise_findings(found)
        return self

    def places(self) -> Iterator[tuple[str, str, str]]:
        """Yield (key path, column, what it is) for every feature column, in model order."""
        yield from ((f"features.{kind}", c, f"a {kind} feature") for kind in ("numeric", "zero_means_missing")
                    for c in getattr(self, kind))
        yield from ((f"features.{kind}.{c}", c, f"a {kind} feature") for kind in ("binary", "categorical")
                    for c in sorted(getattr(self, kind)))


class Split(Section):
    """How each site splits its records (in the window) into train, validation and test."""

    train: Annotated[float, Field(gt=0, lt=1)] = 0.6
    validation: Annotated[float, Field(gt=0, lt=1)] = 0.2
    test: Annotated[float, Field(gt=0, lt=1)] = 0.2

    @model_validator(mode="after")
    def _sums_to_one(self) -> Split:
        if abs(self.train + self.validation + self.test - 1.0) > 1e-9:
            total = self.train + self.validation + self.test
            raise_findings([finding(f"train + validation + test must sum to 1, not {total:g}",
                                    "train", "validation", "test", value=total)])
        return self


class Data(Section):
    """The data contract: each hospital's file and the columns the pipeline uses from it."""

    file_name: Annotated[str, AfterValidator(_file_name)]
    delimiter: Annotated[str, AfterValidator(_delimiter)] = ","
    id_column: ColumnName | None = None
    date_column: ColumnName | None = None
    date_format: Annotated[str, AfterValidator(_date_format)] | None = None
    label: Label
    features: Features
    window_months: Annotated[int, Field(ge=1, le=1200)] | None = None
    split: Split = Split()

    @field_validator("label", mode="before")
    @classmethod
    def _label_is_a_mapping(cls, label: Any) -> Any:
        if isinstance(label, str):
            raise ValueError(f"label is a mapping: {{column: {label}, positive_above: 0}} (or positive_values)")
        return label

    def places(self) -> Iterator[tuple[str, str, str]]:
        """Yield (key path, column, what it is) for every column of the contract."""
        if self.id_column is not None:
            yield "id_column", self.id_column, "the id column"
        if self.date_column is not None:
            yield "date_column", self.date_column, "the date column"
        yield "label.column", self.label.column, "the label"
        yield from self.features.places()

    @model_validator(mode="after")
    def _consistent(self) -> Data:
        found: list[Finding] = []
        uses: dict[str, list[tuple[str, str]]] = {}
        for path, column, what in self.places():
            if (path, what) not in uses.get(column, []):  # a list's own repeats are Features' concern
                uses.setdefault(column, []).append((path, what))
        for column, places in uses.items():
            if len(places) > 1:
                whats = " and ".join(what for _, what in places)
                # blame the later place (a feature rather than the label, the label rather than the id)
                found.append(finding(f"column {column!r} is used as {whats}: each column has one place",
                                     *(path for path, _ in reversed(places)), value=column))
        for key in ("date_format", "window_months"):
            if getattr(self, key) is not None and self.date_column is None:
                found.append(finding(f"{key} without a date_column: set date_column, or remove {key}",
                                     key, "date_column"))
        raise_findings(found)
        return self
