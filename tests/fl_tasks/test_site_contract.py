"""The data contract as a hospital reads it: canonical values, model order, the label rule."""

from __future__ import annotations

import pytest

from fl_tasks.contract import Contract, FeatureSpec, LabelRule, canonical

FEATURES = {
    "categorical": {"stage": [3, 1, 2], "region": ["north", "south"]},
    "binary": {"smoker": "yes", "female": 1},
    "zero_means_missing": ["pressure", "chol"],
    "numeric": ["weight", "age"],
}


@pytest.mark.parametrize(("value", "form"), [
    ("1", "1"), ("1.0", "1"), (" 1 ", "1"), (1, "1"), (1.0, "1"), ("01", "1"), ("1.5", "1.5"),
    (" Male", "male"), ("TRUE", "true"), (True, "true"), ("st-t abnormality", "st-t abnormality"),
    ("1e3", "1000"), ("-2.50", "-2.50"), ("1.0000000000000000001", "1.0000000000000000001"), ("1_000", "1_000"),
    ("12345678901234567891", "12345678901234567891"),
])
def test_canonical_form(value: object, form: str) -> None:
    assert canonical(value) == form


def test_model_order_is_kind_by_kind_and_ignores_mapping_order() -> None:
    spec = FeatureSpec.from_dict(FEATURES)
    expected = ["weight", "age", "pressure", "chol", "female", "smoker",
                "region=north", "region=south", "stage=3", "stage=1", "stage=2"]
    assert spec.columns == expected
    reordered = {kind: FEATURES[kind] for kind in reversed(list(FEATURES))}
    reordered["binary"] = dict(reversed(list(FEATURES["binary"].items())))
    assert FeatureSpec.from_dict(reordered).columns == expected
    assert spec.source_columns == ["weight", "age", "pressure", "chol", "female", "smoker", "region", "stage"]


def test_contract_columns_and_kinds() -> None:
    contract = Contract.from_config({
        "file_name": "x.csv", "delimiter": ";", "id_column": "rid", "date_column": None, "date_format": None,
        "label": {"column": "y", "positive_values": ["Yes", 2]}, "features": FEATURES, "window_months": 3,
        "split": {"train": 0.5, "validation": 0.25, "test": 0.25},
    })
    assert contract.columns[:2] == ["rid", "y"] and contract.delimiter == ";" and contract.window_months == 3
    assert contract.kinds()["rid"] == "id" and contract.kinds()["y"] == "label"
    assert contract.kinds()["pressure"] == "zero_means_missing" and contract.kinds()["stage"] == "categorical"
    assert contract.label == LabelRule("y", None, frozenset({"yes", "2"}))
    assert contract.split == (0.5, 0.25, 0.25)


def test_a_label_needs_exactly_one_rule_and_columns_one_place() -> None:
    with pytest.raises(ValueError, match="exactly one of positive_above and positive_values"):
        LabelRule.from_dict({"column": "y", "positive_above": 0, "positive_values": [1]})
    with pytest.raises(ValueError, match="exactly one"):
        LabelRule.from_dict({"column": "y"})
    with pytest.raises(ValueError, match=r"more than one place: \['age'\]"):
        Contract.from_config({"file_name": "x.csv", "id_column": "age", "label": {"column": "y", "positive_above": 0},
                              "features": {"numeric": ["age"]}})
