"""Tests of the data contract (the ``data`` section): its shape, the canonical form, what YAML does to it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flareflow.config import load_pipeline_config
from flareflow.config.contract import Data, canonical

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _data(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "file_name": "records.tsv", "delimiter": "\t", "label": {"column": "outcome", "positive_values": ["yes"]},
        "features": {"numeric": ["x"]},
    }
    return {**data, **changes}


def test_the_demo_contract() -> None:
    data = load_pipeline_config(CONFIGS).job("train").data
    assert (data.file_name, data.delimiter, data.id_column, data.date_column, data.date_format) == (
        "heart.csv", ",", "id", "admission_date", None)
    assert (data.label.column, data.label.positive_above, data.label.positive_values) == ("num", 0, None)
    assert data.features.numeric == ["age", "thalch", "oldpeak"]
    assert data.features.zero_means_missing == ["trestbps", "chol"]
    assert data.features.binary == {"sex": "Male", "fbs": "true", "exang": "true"}
    assert list(data.features.categorical) == ["cp", "restecg"]
    assert data.window_months is None


def test_a_minimal_contract_of_another_dataset() -> None:
    data = Data.model_validate(_data(features={"binary": {"smoker": 1}, "categorical": {"region": [1, 2, "3"]}}))
    assert data.id_column is None and data.date_column is None
    assert data.label.positive_values == ["yes"]
    assert data.features.binary == {"smoker": 1}
    assert data.features.categorical == {"region": [1, 2, "3"]}
    assert data.split.train == 0.6


def test_the_dump_has_every_key_of_the_spec() -> None:
    dumped = Data.model_validate(_data()).model_dump(mode="json")
    assert list(dumped) == ["file_name", "delimiter", "id_column", "date_column", "date_format", "label",
                            "features", "window_months", "split"]
    assert list(dumped["label"]) == ["column", "positive_above", "positive_values"]
    assert list(dumped["features"]) == ["numeric", "zero_means_missing", "binary", "categorical"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", "1"), ("1.0", "1"), (" 1 ", "1"), (1, "1"), ("+1.", "1"), ("-0", "0"), ("1e3", "1000"),
     ("1.5", "1.5"), (" Male ", "male"), ("ST-T Abnormality", "st-t abnormality"), ("1_0", "1_0"),
     ("nan", "nan"), ("1e40", "1e40")],
)
def test_canonical_form(value: str | int, expected: str) -> None:
    assert canonical(value) == expected


@pytest.mark.parametrize("fmt", ["%Y-%m-%d", "%d.%m.%Y", "%m/%d/%y %H:%M", "%Y%m%d", "%Y-%m"])
def test_date_formats_that_parse_their_own_dates(fmt: str) -> None:
    assert Data.model_validate(_data(date_column="when", date_format=fmt)).date_format == fmt


@pytest.mark.parametrize("delimiter", [",", ";", "|", "\t", " "])
def test_delimiters(delimiter: str) -> None:
    assert Data.model_validate(_data(delimiter=delimiter)).delimiter == delimiter


def test_a_yaml_key_stays_the_text_written(tmp_path: Path) -> None:
    """YAML 1.1 reads keys no, on and 1 as false, true and 1: a config's keys are names, kept as written."""
    configs = tmp_path / "configs"
    shutil.copytree(CONFIGS, configs)
    default = (configs / "default.yaml").read_text()
    default = default.replace('binary: {sex: Male, fbs: "true", exang: "true"}',
                              'binary: {sex: Male, fbs: "true", exang: "true", no: "1", on: x, 1: "1"}')
    (configs / "default.yaml").write_text(default)
    binary = load_pipeline_config(configs).job("stats").data.features.binary
    assert binary == {"sex": "Male", "fbs": "true", "exang": "true", "no": "1", "on": "x", "1": "1"}


def test_loading_the_config_imports_no_pandas() -> None:
    """The DAG processor validates configs within a time limit: the schema stays light."""
    code = ("import sys; from pathlib import Path; from flareflow.config import load_pipeline_config; "
            f"load_pipeline_config(Path({str(CONFIGS)!r})); print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
