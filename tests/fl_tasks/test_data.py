"""A site's data read through the contract: reading, windowing, encoding, the label rule, splitting, scaling."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fl_tasks.contract import Contract, FeatureSpec, LabelRule
from fl_tasks.data import (
    SiteFileError,
    encode,
    encode_features,
    encode_label,
    load_model_inputs,
    load_site_data,
    model_inputs,
    read_site_file,
    split_indices,
    standardize,
)

SPEC = FeatureSpec.from_dict({
    "numeric": ["age"], "zero_means_missing": ["chol"], "binary": {"sex": "Male", "fbs": "true"},
    "categorical": {"cp": ["typical angina", "asymptomatic"], "grade": [1, 2]},
})
DATA = {
    "file_name": "site.csv", "delimiter": ",", "id_column": "rid", "date_column": "seen", "date_format": None,
    "label": {"column": "num", "positive_above": 0},
    "features": {"numeric": ["age"], "zero_means_missing": ["chol"], "binary": {"sex": "Male"},
                 "categorical": {}},
    "window_months": None, "split": {"train": 0.6, "validation": 0.2, "test": 0.2},
}


def frame() -> pd.DataFrame:
    """Records as read from a file: text, with missing values as NA."""
    return pd.DataFrame({
        "age": ["50", "60", " 70 ", "old"], "chol": ["200", "0", None, "180.5"],
        "sex": ["Male", "female", " male", None], "fbs": ["TRUE", "false", None, "true"],
        "cp": ["asymptomatic", "Typical Angina", "non-anginal", None], "grade": ["1", "2.0", "3", "1"],
        "num": ["0", "2", "1", None],
    }, dtype=str)


def test_encoding_follows_the_contract_and_keeps_missing_values_missing() -> None:
    encoded = encode(frame(), SPEC)
    x = encoded.features
    assert list(x.columns) == ["age", "chol", "fbs", "sex", "cp=typical angina", "cp=asymptomatic",
                               "grade=1", "grade=2"]
    assert x["age"].tolist()[:3] == [50.0, 60.0, 70.0] and np.isnan(x["age"].iloc[3])
    assert encoded.unparseable["age"].tolist() == [False, False, False, True]  # "old" is no number
    assert x["chol"].iloc[0] == 200.0 and x["chol"].iloc[1:3].isna().all()  # 0 means missing
    assert encoded.unparseable["chol"].sum() == 0
    assert x["sex"].tolist()[:3] == [1.0, 0.0, 1.0] and np.isnan(x["sex"].iloc[3])  # canonical comparison
    assert x["fbs"].tolist()[:2] == [1.0, 0.0] and np.isnan(x["fbs"].iloc[2])
    assert x["cp=asymptomatic"].tolist()[:3] == [1.0, 0.0, 0.0]
    assert x["cp=typical angina"].tolist()[:3] == [0.0, 1.0, 0.0] and np.isnan(x["cp=typical angina"].iloc[3])
    assert x["grade=2"].tolist() == [0.0, 1.0, 0.0, 0.0]  # "2.0" is 2; "3" is unknown: no indicator set
    assert encoded.unknown == {"fbs": 0, "sex": 0, "cp": 1, "grade": 1}
    assert encode_features(frame(), SPEC).equals(x)


def test_the_label_rule() -> None:
    above = encode_label(frame()["num"], LabelRule("num", positive_above=0))
    assert above[:3].tolist() == [0.0, 1.0, 1.0] and np.isnan(above[3])
    values = encode_label(pd.Series(["yes", " YES", "no", None, "2.0"], dtype=str),
                          LabelRule.from_dict({"column": "y", "positive_values": ["Yes", 2]}))
    assert values[:3].tolist() == [1.0, 1.0, 0.0] and np.isnan(values[3]) and values[4] == 1.0


def test_records_without_a_label_are_not_model_inputs() -> None:
    contract = Contract.from_config(DATA)
    features, labels = model_inputs(frame(), contract)
    assert labels.tolist() == [0, 1, 1] and labels.dtype.kind == "i"
    assert features["age"].tolist() == [50.0, 60.0, 70.0]


def _write(path: Path, rows: dict[str, list[str]], sep: str = ",") -> Path:
    pd.DataFrame(rows).to_csv(path, index=False, sep=sep)
    return path


def test_only_the_contracts_columns_are_read(tmp_path: Path) -> None:
    path = _write(tmp_path / "site.csv", {"rid": ["1"], "secret": ["x"], "seen": ["2026-01-01"], "num": ["0"],
                                          "age": ["50"], "chol": ["1"], "sex": ["Male"], "other": ["y"]})
    read = read_site_file(path, Contract.from_config(DATA))
    assert list(read.columns) == ["rid", "seen", "num", "age", "chol", "sex"]  # the contract's order
    assert all(pd.api.types.is_string_dtype(read[c]) for c in read.columns)


def test_the_window_ends_before_until_and_spans_the_months(tmp_path: Path) -> None:
    seen = ["2026-08-31", "2026-09-01", "2026-09-30T23:59:00+00:00", "2026-10-01", "", "31/08/2026"]
    rows = {"rid": [str(i) for i in range(6)], "seen": seen, "num": ["1"] * 6, "age": ["1"] * 6,
            "chol": ["1"] * 6, "sex": ["Male"] * 6}
    path = _write(tmp_path / "site.csv", rows)
    contract = Contract.from_config(DATA)
    assert load_site_data(path, contract, until=date(2026, 10, 1))["rid"].tolist() == ["0", "1", "2"]
    one_month = Contract.from_config({**DATA, "window_months": 1})
    assert load_site_data(path, one_month, until=date(2026, 10, 1))["rid"].tolist() == ["1", "2"]
    undated = Contract.from_config({**DATA, "date_column": None})
    assert load_site_data(path, undated, until=date(2026, 10, 1))["rid"].tolist() == [str(i) for i in range(6)]
    formatted = Contract.from_config({**DATA, "date_format": "%d/%m/%Y"})
    assert load_site_data(path, formatted, until=date(2026, 10, 1))["rid"].tolist() == ["5"]


def test_a_file_lacking_contract_columns_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path / "site.csv", {"rid": ["1"], "seen": ["2026-01-01"], "num": ["0"], "age": ["5"]})
    with pytest.raises(SiteFileError, match=r"site\.csv: missing columns \['chol', 'sex'\]"):
        load_site_data(path, Contract.from_config(DATA), until=date(2026, 10, 1))
    with pytest.raises(FileNotFoundError, match=r"missing\.csv"):
        load_site_data(tmp_path / "missing.csv", Contract.from_config(DATA), until=date(2026, 10, 1))


def test_a_client_reads_its_model_inputs_through_the_contract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = {"rid": ["1", "2", "3", "4"], "seen": ["2026-01-01"] * 3 + ["2027-01-01"], "num": ["0", "3", "", "1"],
            "age": ["40", "", "60", "70"], "chol": ["0", "200", "100", "1"], "sex": ["Male", "Female", "Male", "x"]}
    (tmp_path / "data").mkdir()
    _write(tmp_path / "data" / "site.csv", rows, sep=";")
    monkeypatch.setenv("FLAREFLOW_SITE_DATA_DIR", str(tmp_path / "data"))
    settings = {"data": {**DATA, "delimiter": ";"}, "until": "2026-10-01",
                "means": {"age": 50.0, "chol": 150.0, "sex": 0.5}, "stddevs": {"age": 10.0, "chol": 50.0, "sex": 0.5}}
    x, y = load_model_inputs(tmp_path / "workspace", settings)
    assert y.tolist() == [0, 1]  # record 3 has no label, record 4 is after the window
    assert x.tolist() == [[-1.0, 0.0, 1.0], [0.0, 1.0, -1.0]]  # missing values at the global mean


def test_split_is_stratified_reproducible_and_complete() -> None:
    labels = np.array([0] * 60 + [1] * 40)
    train, val, test = split_indices(labels, (0.6, 0.2, 0.2), seed=3)
    assert (len(train), len(val), len(test)) == (60, 20, 20)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(100))
    assert labels[train].mean() == pytest.approx(0.4) and labels[test].mean() == pytest.approx(0.4)
    again = split_indices(labels, (0.6, 0.2, 0.2), seed=3)
    assert all((a == b).all() for a, b in zip((train, val, test), again, strict=True))
    other = split_indices(labels, (0.6, 0.2, 0.2), seed=4)
    assert not (other[0] == train).all()


def test_standardize_imputes_the_global_mean_and_scales_by_the_global_stddev() -> None:
    features = pd.DataFrame({"a": [1.0, np.nan, 5.0], "b": [2.0, 2.0, 2.0]})
    scaled = standardize(features, {"a": 3.0, "b": 2.0}, {"a": 2.0, "b": 0.0})
    assert scaled[:, 0].tolist() == [-1.0, 0.0, 1.0]
    assert scaled[:, 1].tolist() == [0.0, 0.0, 0.0]  # a zero stddev does not divide by zero


def test_a_big_hospitals_extra_columns_are_never_parsed_and_dates_are_parsed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At a million rows a site must not load what the contract does not name (issue 11, requirement 4)."""
    import fl_tasks.data as data

    rows = 200
    notes = "x" * 5000  # a free-text column as big as the rest of the record many times over
    path = _write(tmp_path / "site.csv", {
        "rid": [str(i) for i in range(rows)], "notes": [notes] * rows, "seen": ["2026-08-31"] * rows,
        "num": ["1"] * rows, "age": ["50"] * rows, "chol": ["200"] * rows, "sex": ["Male"] * rows,
        "scan": ["not, a, number"] * rows,
    })
    contract = Contract.from_config(DATA)
    read_calls: list[dict[str, object]] = []
    date_calls: list[int] = []
    real_read_csv, real_to_datetime = pd.read_csv, pd.to_datetime

    def spy_read_csv(*args: object, **kwargs: object) -> pd.DataFrame:
        read_calls.append(kwargs)
        return real_read_csv(*args, **kwargs)

    def spy_to_datetime(values: pd.Series, *args: object, **kwargs: object) -> pd.Series:
        date_calls.append(len(values))
        return real_to_datetime(values, *args, **kwargs)

    monkeypatch.setattr(data.pd, "read_csv", spy_read_csv)
    monkeypatch.setattr(data.pd, "to_datetime", spy_to_datetime)
    frame = load_site_data(path, contract, until=date(2026, 10, 1))

    assert list(frame.columns) == contract.columns and len(frame) == rows
    # the header is read alone (no rows); the one full read asks for the contract's columns only
    full_reads = [kwargs for kwargs in read_calls if kwargs.get("nrows") != 0]
    assert len(full_reads) == 1 and sorted(full_reads[0]["usecols"]) == sorted(contract.columns)
    assert not any(frame[column].astype(str).str.len().max() >= len(notes) for column in frame.columns)
    assert date_calls == [rows]  # the date column, parsed once, as a whole
