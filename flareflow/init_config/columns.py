"""Learn each column's kind from a data file or a data dictionary: names, kinds and category labels only.

Nothing here keeps a patient's value: a column's profile holds its name, its kind, and for a binary
or categorical column its labels (the values a category takes). Numeric columns keep only flags
(integer codes, a zero that looks like a missing marker, some text among the numbers).

A data dictionary is a CSV whose header starts ``column,kind``: one row per column of the hospitals'
files, with ``kind`` one of :data:`KINDS`, ``values`` the labels separated by ``|`` (a binary's two
values, a categorical's categories, the site column's hospitals, or the date column's format), and an
optional ``positive`` (the value of a binary column that means 1).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

#: the kinds a column may have (``text``: not usable as a feature; ``date``, ``id``, ``site``: roles)
KINDS = ("numeric", "zero_means_missing", "binary", "categorical", "text", "date", "id", "site")
#: values that read as "yes" (the one meaning 1 when a two-valued column holds one of them)
POSITIVE_WORDS = frozenset({"true", "t", "yes", "y", "positive", "pos", "present"})
#: ISO 8601 first, then common day-first and month-first formats
DATE_FORMATS = ("%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%d-%m-%Y", "%Y/%m/%d", "%Y%m%d")
DICTIONARY_HEADER = ("column", "kind")
Label = str | int


class InferenceError(ValueError):
    """The input cannot be described; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Column:
    """One column as init-config sees it.

    :param name: the column's name
    :param kind: one of :data:`KINDS`, or ``empty`` / ``constant`` / ``distinct`` (left out)
    :param labels: a binary's two values, a categorical's categories, the site column's hospitals
    :param positive: the binary value meaning 1, when a data dictionary declares it
    :param integer_codes: numbers that are all integers (a categorical or binary of codes)
    :param zero_suspect: numeric, where 0 looks like a missing marker (0 far below every other value)
    :param some_text: numeric, but some values are not numbers
    :param date_format: the date column's format (None: ISO 8601), when known
    :param dates_read: False when the date column's values did not read in any known format
    """

    name: str
    kind: str
    labels: tuple[Label, ...] = ()
    positive: Label | None = None
    integer_codes: bool = False
    zero_suspect: bool = False
    some_text: bool = False
    date_format: str | None = None
    dates_read: bool = True


def canonical(value: object) -> Label:
    """Return a value's canonical form: stripped, lower-cased, an integer-valued number as that integer.

    :param value: a value as a file or config writes it
    """
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = str(value).strip().lower()
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if math.isfinite(number) and number.is_integer() else text


def positive_of(column: Column) -> Label:
    """Return the value of a binary column that means 1: declared, else 1 of 0/1, a "yes" word, else the
    larger number or the last text in order.

    :param column: a binary column
    """
    if column.positive is not None:
        return column.positive
    keys = [canonical(label) for label in column.labels]
    if set(keys) == {0, 1}:
        return column.labels[keys.index(1)]
    yes = [label for label, key in zip(column.labels, keys, strict=True) if isinstance(key, str)
           and key in POSITIVE_WORDS]
    if len(yes) == 1:
        return yes[0]
    return max(column.labels, key=lambda label: (isinstance(canonical(label), str), canonical(label)))


def is_dictionary(path: Path, delimiter: str = ",") -> bool:
    """Return True when the file is a data dictionary (its header starts ``column,kind``).

    :param path: the input file
    :param delimiter: its field separator
    """
    with path.open(newline="", encoding="utf-8-sig") as stream:
        header = next(csv.reader(stream, delimiter=delimiter), [])
    return tuple(h.strip().lower() for h in header[:2]) == DICTIONARY_HEADER


def _label(text: str) -> Label:
    """Return a label as written, an integer-valued number as an int (``"1"``, ``"1.0"`` -> 1)."""
    key = canonical(text)
    return key if isinstance(key, int) else text.strip()


def _distinct_labels(texts: Iterable[str], *, ordered: bool = True) -> tuple[Label, ...]:
    """Return the distinct labels (first spelling of each canonical form), sorted or as first seen.

    :param texts: the values
    :param ordered: sort by canonical form (numbers first); else keep the order they come in
    """
    first: dict[Label, Label] = {}
    for text in texts:
        first.setdefault(canonical(text), _label(text))
    keys = sorted(first, key=lambda k: (isinstance(k, str), k)) if ordered else list(first)
    return tuple(first[key] for key in keys)


def _date_format(texts: pd.Series) -> tuple[str | None, bool]:
    """Return the date column's format (None: ISO 8601) and whether every value read in it."""
    if pd.to_datetime(texts, format="ISO8601", errors="coerce").notna().all():
        return None, True
    for fmt in DATE_FORMATS:
        if pd.to_datetime(texts, format=fmt, errors="coerce").notna().all():
            return fmt, True
    return None, False


def _numeric_column(name: str, numbers: pd.Series, max_categories: int) -> Column:
    distinct = numbers.unique()
    integer = bool(all(float(x).is_integer() for x in distinct))
    if len(distinct) == 1:
        return Column(name, "constant")
    if len(distinct) == 2:
        return Column(name, "binary", _distinct_labels(str(x) for x in distinct), integer_codes=integer)
    # a few integer values, each seen several times: codes (a small sample's ages rarely repeat)
    if integer and len(distinct) <= max_categories and len(numbers) >= 3 * len(distinct):
        return Column(name, "categorical", _distinct_labels(str(x) for x in distinct), integer_codes=True)
    if integer and len(numbers) >= 50 and len(distinct) == len(numbers):
        return Column(name, "distinct")  # every record its own number: an id, not a measurement
    positive = numbers[numbers > 0]
    zero_suspect = bool((numbers == 0).any() and (numbers >= 0).all() and len(positive)
                        and positive.min() > 0.25 * positive.median())
    return Column(name, "numeric", integer_codes=integer, zero_suspect=zero_suspect)


def profile_series(name: str, values: pd.Series, max_categories: int) -> Column:
    """Return a column's kind from its values (text; missing cells as NA).

    :param name: the column's name
    :param values: the column's values as text
    :param max_categories: more distinct text values than this make a text column, not a categorical
    """
    texts = values.dropna().astype(str).str.strip()
    texts = texts[texts != ""]
    if texts.empty:
        return Column(name, "empty")
    numbers = pd.to_numeric(texts, errors="coerce")
    if numbers.notna().all():
        return _numeric_column(name, numbers.astype(float), max_categories)
    if numbers.notna().mean() >= 0.9:  # mostly numbers: the rest is a missing marker or a typo
        column = _numeric_column(name, numbers.dropna().astype(float), max_categories)
        return Column(name, "numeric", integer_codes=column.integer_codes, zero_suspect=column.zero_suspect,
                      some_text=True)
    labels = _distinct_labels(texts)
    if len(labels) == 1:
        return Column(name, "constant")
    if len(labels) == 2:
        return Column(name, "binary", labels)
    if len(labels) <= max_categories:
        return Column(name, "categorical", labels)
    if pd.to_datetime(texts, format="ISO8601", errors="coerce").notna().mean() > 0.9:
        return Column(name, "date")
    return Column(name, "text")


def profile_data(path: Path, delimiter: str, max_categories: int, *, dates: Sequence[str] = (),
                 labels_of: Sequence[str] = ()) -> list[Column]:
    """Return every column of a data file (real data or a sample) with its inferred kind.

    :param path: the CSV file
    :param delimiter: its field separator
    :param max_categories: more distinct text values than this make a text column
    :param dates: columns known to be dates (their format is inferred)
    :param labels_of: columns whose distinct values are needed whatever their count (the site column)
    """
    try:
        frame = pd.read_csv(path, sep=delimiter, dtype=str, keep_default_na=True)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InferenceError(f"{path}: not a readable CSV file ({err})") from err
    if len(frame.columns) == 1:
        header = str(frame.columns[0])
        other = next((d for d in (";", "\t", "|", ",") if d in header and d != delimiter), None)
        if other:
            raise InferenceError(f"{path}: the header reads as one column; is the delimiter {other!r}? "
                                 f"(--delimiter)")
    if frame.empty:
        raise InferenceError(f"{path}: no records below the header; use a data dictionary for a file without rows")
    columns = []
    for name in frame.columns:
        values = frame[name]
        if name in dates:
            texts = values.dropna().astype(str).str.strip()
            fmt, read = _date_format(texts[texts != ""])
            columns.append(Column(name, "date", date_format=fmt, dates_read=read))
        elif name in labels_of:
            texts = values.dropna().astype(str).str.strip()
            columns.append(Column(name, "site", tuple(sorted(set(texts) - {""}))))
        else:
            columns.append(profile_series(name, values, max_categories))
    return columns


def profile_dictionary(path: Path, delimiter: str = ",") -> list[Column]:
    """Return the columns a data dictionary declares; fail naming every bad row.

    :param path: the data dictionary (``column,kind[,values][,positive]``)
    :param delimiter: its field separator
    """
    with path.open(newline="", encoding="utf-8-sig") as stream:
        rows = list(csv.DictReader(stream, delimiter=delimiter))
    columns, problems, seen = [], [], set()
    for number, raw in enumerate(rows, start=2):
        row = {str(k).strip().lower(): (v or "").strip() for k, v in raw.items() if k is not None}
        name, kind = row.get("column", ""), row.get("kind", "").lower()
        labels = tuple(v.strip() for v in row.get("values", "").split("|") if v.strip())
        where = f"{path}, line {number}"
        if not name:
            problems.append(f"{where}: no column name")
            continue
        if name in seen:
            problems.append(f"{where}: column {name!r} described twice")
        seen.add(name)
        if kind not in KINDS:
            problems.append(f"{where}: {name}: kind {kind!r} is not one of {list(KINDS)}")
            continue
        if kind == "date":
            columns.append(Column(name, kind, date_format=labels[0] if labels else None))
            continue
        if kind == "site":
            columns.append(Column(name, kind, labels))
            continue
        values = _distinct_labels(labels, ordered=False)  # categories in the order declared
        if kind == "binary" and len(values) != 2:
            problems.append(f"{where}: binary column {name!r} needs its two values, e.g. 0|1")
            continue
        if kind == "categorical" and len(values) < 2:
            problems.append(f"{where}: categorical column {name!r} needs its categories, e.g. a|b|c")
            continue
        positive = _label(row["positive"]) if row.get("positive") else None
        if positive is not None and canonical(positive) not in {canonical(v) for v in values}:
            problems.append(f"{where}: {name}: positive value {positive!r} is not one of its values {list(values)}")
            continue
        integer = bool(values) and all(isinstance(v, int) for v in values)
        columns.append(Column(name, kind, values, positive=positive, integer_codes=integer))
    if problems:
        raise InferenceError("the data dictionary has problems:\n  " + "\n  ".join(problems))
    if not columns:
        raise InferenceError(f"{path}: the data dictionary describes no column")
    return columns
