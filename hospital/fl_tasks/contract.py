"""The data contract as a hospital reads it: which columns its file holds, their kinds, the label rule.

Built from the ``data`` section of a validated job config (the config checks it centrally; see
``flareflow.config.schema``), so nothing here names a dataset's columns. Kept free of pandas: the
research centre's side imports it too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

#: the kinds of a contract column; features are the last four
ID, DATE, LABEL = "id", "date", "label"
NUMERIC, ZERO_MEANS_MISSING, BINARY, CATEGORICAL = "numeric", "zero_means_missing", "binary", "categorical"
FEATURE_KINDS: tuple[str, ...] = (NUMERIC, ZERO_MEANS_MISSING, BINARY, CATEGORICAL)
#: a number as text: what :func:`canonical` reads as a number
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def canonical(value: object) -> str:
    """Return the form a value is compared in: stripped, lower-cased, an integral number as that integer.

    ``"1"``, ``"1.0"``, ``" 1 "`` and ``1`` all give ``"1"``; ``" Male"`` gives ``"male"``. Numbers are
    read exactly (decimal, not float), as the config's validation reads them.

    :param value: a value from a site's file or from the config
    """
    text = str(value).strip().lower()
    if _NUMBER.fullmatch(text):
        number = Decimal(text)
        if number == number.to_integral_value() and number.adjusted() < 19:
            return str(int(number))
    return text


@dataclass(frozen=True)
class FeatureSpec:
    """Which columns become model features, and how.

    :param numeric: columns used as numbers
    :param zero_means_missing: numeric columns where 0 records a missing value
    :param binary: column -> the value that encodes as 1 (str or int)
    :param categorical: column -> its categories (str or int), each becoming a 0/1 column ``column=category``
    """

    numeric: tuple[str, ...] = ()
    zero_means_missing: tuple[str, ...] = ()
    binary: Mapping[str, str | int] = field(default_factory=dict)
    categorical: Mapping[str, tuple[str | int, ...]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> FeatureSpec:
        """Build a spec from the ``data.features`` section of a job config (any mapping order).

        :param spec: the ``features`` mapping
        """
        return cls(
            numeric=tuple(spec.get(NUMERIC) or ()),
            zero_means_missing=tuple(spec.get(ZERO_MEANS_MISSING) or ()),
            binary=dict(spec.get(BINARY) or {}),
            categorical={column: tuple(categories) for column, categories in (spec.get(CATEGORICAL) or {}).items()},
        )

    @property
    def source_columns(self) -> list[str]:
        """Return the file columns the features come from, in model order."""
        return [*self.numeric, *self.zero_means_missing, *sorted(self.binary), *sorted(self.categorical)]

    @property
    def columns(self) -> list[str]:
        """Return the encoded feature names in model order.

        Numeric (list order), zero_means_missing (list order), binary (by column name), then one
        ``column=category`` indicator per category of each categorical column (by column name; the
        categories in their listed order, as written in the config).
        """
        names = [*self.numeric, *self.zero_means_missing, *sorted(self.binary)]
        for column in sorted(self.categorical):
            names += [f"{column}={category}" for category in self.categorical[column]]
        return names

    def kinds(self) -> dict[str, str]:
        """Return each feature column's kind."""
        kinds = {column: NUMERIC for column in self.numeric}
        kinds.update({column: ZERO_MEANS_MISSING for column in self.zero_means_missing})
        kinds.update({column: BINARY for column in self.binary})
        kinds.update({column: CATEGORICAL for column in self.categorical})
        return kinds


@dataclass(frozen=True)
class LabelRule:
    """The label column and what makes a record positive (exactly one rule).

    :param column: the label column
    :param positive_above: positive when the numeric label is above this
    :param positive_values: positive when the label is one of these (canonical forms, see :func:`canonical`)
    """

    column: str
    positive_above: float | None = None
    positive_values: frozenset[str] = frozenset()

    @classmethod
    def from_dict(cls, label: Mapping[str, Any]) -> LabelRule:
        """Build the rule from the ``data.label`` section of a job config.

        :param label: ``{"column": ..., "positive_above": x}`` or ``{"column": ..., "positive_values": [...]}``
        """
        above, values = label.get("positive_above"), label.get("positive_values")
        if (above is None) == (values is None):
            raise ValueError(f"label {label.get('column')!r}: give exactly one of positive_above and positive_values")
        return cls(column=label["column"], positive_above=None if above is None else float(above),
                   positive_values=frozenset(canonical(v) for v in values or ()))

    @property
    def numeric(self) -> bool:
        """Return True when the label must be a number (the ``positive_above`` rule)."""
        return self.positive_above is not None


@dataclass(frozen=True)
class Contract:
    """What each hospital's file must hold, from the config's ``data`` section.

    :param file_name: the file's name in each site's data folder
    :param features: the model features
    :param label: the label column and its positive rule
    :param delimiter: the field separator
    :param id_column: a record id column (duplicates break the contract), or None
    :param date_column: the column placing a record in time, or None (every run uses every record)
    :param date_format: the strftime format of the date column, or None for ISO 8601
    :param window_months: if set, a run uses only the last this many months before its end
    :param split: train, validation and test fractions
    """

    file_name: str
    features: FeatureSpec
    label: LabelRule
    delimiter: str = ","
    id_column: str | None = None
    date_column: str | None = None
    date_format: str | None = None
    window_months: int | None = None
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> Contract:
        """Build the contract from the validated ``data`` section of a job config.

        :param data: the ``data`` mapping (JSON-safe, any mapping order)
        """
        split = data.get("split") or {"train": 0.6, "validation": 0.2, "test": 0.2}
        contract = cls(
            file_name=data["file_name"], features=FeatureSpec.from_dict(data["features"]),
            label=LabelRule.from_dict(data["label"]), delimiter=data.get("delimiter") or ",",
            id_column=data.get("id_column"), date_column=data.get("date_column"),
            date_format=data.get("date_format"), window_months=data.get("window_months"),
            split=(float(split["train"]), float(split["validation"]), float(split["test"])),
        )
        repeated = _repeated(contract.columns)
        if repeated:
            raise ValueError(f"data: columns used in more than one place: {repeated}")
        return contract

    @property
    def columns(self) -> list[str]:
        """Return every column the contract reads: id, date, label, then the features in model order."""
        optional = [c for c in (self.id_column, self.date_column) if c]
        return [*optional, self.label.column, *self.features.source_columns]

    def kinds(self) -> dict[str, str]:
        """Return each contract column's kind (``id``, ``date``, ``label`` or a feature kind)."""
        kinds = {self.id_column: ID, self.date_column: DATE, self.label.column: LABEL}
        return {**{c: k for c, k in kinds.items() if c}, **self.features.kinds()}


def _repeated(columns: Sequence[str]) -> list[str]:
    return sorted({c for i, c in enumerate(columns) if c in columns[:i]})
