"""``flareflow init-config``: a commented config drafted from a data file, a sample, or a data dictionary."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from flareflow.config import load_pipeline_config
from flareflow.init_config import InferenceError, Options, draft, init_config
from flareflow.init_config.columns import Column, positive_of
from flareflow.init_config.render import scalar
from flareflow.local.cli import main
from flareflow.local.stack import DEMO_DATA, project_dir

SECOND = project_dir() / "data" / "synthetic-readmissions"
READMISSIONS = SECOND / "readmissions.csv"
DEMO = project_dir() / DEMO_DATA / "heart_disease_uci_dated.csv"
SECOND_SITES = ["hillcrest-hospital", "lakeside-medical-center", "st-marys-clinic"]


def _options(data: Path, **extra: object) -> Options:
    settings: dict[str, object] = {"site_column": "hospital", "label": "readmitted_30d", "date_column": "visit_date",
                                   "id_column": "patient_id", **extra}
    return Options(data, **settings)  # type: ignore[arg-type]


def _written(out: Path) -> dict:
    return yaml.safe_load((out / "default.yaml").read_text())


def test_the_second_dataset_gets_its_contract(tmp_path: Path) -> None:
    _, files = init_config(_options(READMISSIONS), tmp_path / "configs", check=False)
    assert sorted(f.name for f in files) == ["default.yaml", "shap.yaml", "stats.yaml", "train.yaml"]
    config = _written(tmp_path / "configs")
    assert config["federation"]["sites"] == SECOND_SITES
    assert config["data"] == {
        "file_name": "readmissions.csv", "delimiter": ",", "id_column": "patient_id", "date_column": "visit_date",
        "date_format": "%d/%m/%Y",
        "label": {"column": "readmitted_30d", "positive_values": [1]},
        "features": {
            "numeric": ["age", "bmi", "systolic_bp", "hba1c"], "zero_means_missing": [],
            "binary": {"smoker": 1, "diabetes": 1},
            "categorical": {"admission_type": [1, 2, 3], "ward": ["cardiology", "medical", "surgical"]},
        },
        "window_months": None, "split": {"train": 0.6, "validation": 0.2, "test": 0.2},
    }
    assert config["mlflow"]["registered_model"] == "flareflow-readmissions"
    text = (tmp_path / "configs" / "default.yaml").read_text()
    assert "St. Mary's Clinic -> st-marys-clinic" in text
    assert "# left out: referrer (text with more distinct values" in text
    for job in ("stats", "train", "shap"):  # comments only: default.yaml decides until someone edits them
        assert yaml.safe_load((tmp_path / "configs" / f"{job}.yaml").read_text()) is None


def test_the_drafted_configs_load_with_the_pipelines_loader(tmp_path: Path) -> None:
    for data, options in ((READMISSIONS, {}), (DEMO, {"site_column": "dataset", "label": "num",
                                                       "date_column": "admission_date", "id_column": "id"})):
        out = tmp_path / data.stem
        init_config(_options(data, **options), out)  # check=True: loads it, or fails naming file and key
        config = load_pipeline_config(out).job("train")
        assert config.data.label.column == options.get("label", "readmitted_30d")


def test_the_demo_file_reads_as_its_hand_written_config_says(tmp_path: Path) -> None:
    result = draft(_options(DEMO, site_column="dataset", label="num", date_column="admission_date", id_column="id"))
    features = result.data["features"]
    assert result.sites == ["cleveland", "hungary", "switzerland", "va-long-beach"]
    assert result.data["label"] == {"column": "num", "positive_above": 0}
    assert result.data["date_format"] is None
    assert features["numeric"] == ["age", "trestbps", "chol", "thalch", "oldpeak"]
    assert features["binary"] == {"sex": "Male", "fbs": "TRUE", "exang": "TRUE"}
    assert features["categorical"]["cp"] == ["asymptomatic", "atypical angina", "non-anginal", "typical angina"]
    assert features["categorical"]["ca"] == [0, 1, 2, 3]
    # zero as a missing marker is suggested for the columns where it is one, never moved silently
    suspects = {key.rsplit(".", 1)[1] for key, note in result.notes.items() if "zero_means_missing" in note}
    assert suspects == {"trestbps", "chol"}
    assert features["zero_means_missing"] == []


def test_a_sample_file_gives_the_same_kinds(tmp_path: Path) -> None:
    frame = pd.read_csv(READMISSIONS, dtype=str, keep_default_na=False)
    sample = frame.groupby("hospital").head(10)  # 30 rows, every hospital
    sample.to_csv(tmp_path / "sample.csv", index=False)
    full, small = draft(_options(READMISSIONS)), draft(_options(tmp_path / "sample.csv", file_name="readmissions.csv",
                                                                  name="readmissions"))
    assert small.sites == full.sites
    assert small.data == full.data  # ages that never repeat stay numbers; codes that repeat are categories


def test_a_data_dictionary_gives_the_same_contract(tmp_path: Path) -> None:
    result = draft(_options(SECOND / "dictionary.csv", file_name="readmissions.csv"))
    full = draft(_options(READMISSIONS))
    assert result.sites == full.sites
    assert result.name == "synthetic-readmissions"  # a dictionary's name comes from its folder
    categorical = result.data["features"]["categorical"]
    assert categorical["ward"] == ["medical", "surgical", "cardiology"]  # the declared order is kept
    assert {k: sorted(v) for k, v in categorical.items()} == full.data["features"]["categorical"]
    assert {**result.data, "features": None} == {**full.data, "features": None}
    assert {k: v for k, v in result.data["features"].items() if k != "categorical"} == {
        k: v for k, v in full.data["features"].items() if k != "categorical"}


def test_a_data_dictionarys_mistakes_are_named_together(tmp_path: Path) -> None:
    path = tmp_path / "dictionary.csv"
    path.write_text("column,kind,values,positive\nsite,site,A|B,\nx,binary,0,\ny,colour,,\nz,categorical,a|b,c\n"
                    "x,numeric,,\n")
    with pytest.raises(InferenceError) as raised:
        draft(Options(path, "site", "x"))
    message = str(raised.value)
    for expected in ("line 3: binary column 'x' needs its two values", "line 4: y: kind 'colour' is not one of",
                     "line 5: z: positive value 'c' is not one of its values", "line 6: column 'x' described twice"):
        assert expected in message


def test_no_patient_value_is_written_or_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = 60
    frame = pd.DataFrame({
        "pid": [f"PX{9000 + i}" for i in range(rows)],
        "site": ["Alpha Hospital", "Beta Hospital"] * (rows // 2),
        "when": [f"2026-0{1 + i % 9}-{10 + i % 18}" for i in range(rows)],
        "weight": [71.234 + 1.111 * i for i in range(rows)],
        "score": [1000.5 + i for i in range(rows)],
        "flag": [i % 2 for i in range(rows)],
        "outcome": [(i // 2) % 2 for i in range(rows)],
    })
    frame.to_csv(tmp_path / "data.csv", index=False)
    code = main(["init-config", "--data", str(tmp_path / "data.csv"), "--site-column", "site", "--label", "outcome",
                 "--date-column", "when", "--id-column", "pid", "--out", str(tmp_path / "out")])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    written = "".join(p.read_text() for p in (tmp_path / "out").iterdir()) + printed.out + printed.err
    for column in ("pid", "when", "weight", "score"):
        for value in frame[column].astype(str):
            assert value not in written, f"{column} value {value} leaked"
    assert "Alpha Hospital" in written  # hospital names are labels, shown where sites are made


def test_missing_and_repeated_role_columns_are_named_together(tmp_path: Path) -> None:
    with pytest.raises(InferenceError, match=r"no column site column 'clinic', date column 'seen'; its columns"):
        draft(_options(READMISSIONS, site_column="clinic", date_column="seen"))
    with pytest.raises(InferenceError, match=r"one role only: \['age'\]"):
        draft(_options(READMISSIONS, label="age", id_column="age"))


def test_a_label_of_measurements_needs_its_threshold(tmp_path: Path) -> None:
    with pytest.raises(InferenceError, match="give the threshold above which it is positive"):
        draft(_options(READMISSIONS, label="bmi"))
    result = draft(_options(READMISSIONS, label="bmi", positive_above=30.0))
    assert result.data["label"] == {"column": "bmi", "positive_above": 30.0}
    assert "bmi" not in result.data["features"]["numeric"]
    result = draft(_options(READMISSIONS, label="ward", positive_values=("cardiology",)))
    assert result.data["label"] == {"column": "ward", "positive_values": ["cardiology"]}


def test_another_delimiter_is_suggested(tmp_path: Path) -> None:
    (tmp_path / "semi.csv").write_text("a;b;c\n1;2;3\n")
    with pytest.raises(InferenceError, match="is the delimiter ';'"):
        draft(Options(tmp_path / "semi.csv", "a", "b"))


def test_an_existing_config_is_kept_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "default.yaml").write_text("keep: me\n")
    with pytest.raises(InferenceError, match=r"already holds \['default.yaml'\]"):
        init_config(_options(READMISSIONS), tmp_path, check=False)
    assert (tmp_path / "default.yaml").read_text() == "keep: me\n"
    init_config(_options(READMISSIONS), tmp_path, check=False, force=True)
    assert "federation" in _written(tmp_path)


def test_an_undeclared_id_is_left_out_not_learnt_from() -> None:
    result = draft(_options(READMISSIONS, id_column=None))
    assert result.data["id_column"] is None
    assert "patient_id" not in result.data["features"]["numeric"]
    assert ("patient_id", "a different whole number in every record: an id? (--id-column)") in result.left_out


@pytest.mark.parametrize("value", ["TRUE", "yes", "no", "null", "1", "1.5", "a: b", "x # y", "-", "[a]", "Ünïcode",
                                   " lead", "st-t abnormality", "it's", "%d/%m/%Y", "0 3 1 * *",
                                   1e-05, 0.0001, 10.0, 3, None, True])
def test_a_value_reads_back_as_itself(value: object) -> None:
    assert yaml.safe_load(f"key: {scalar(value)}") == {"key": value}


@pytest.mark.parametrize(("labels", "positive"), [
    ((0, 1), 1), (("FALSE", "TRUE"), "TRUE"), (("no", "yes"), "yes"), (("Female", "Male"), "Male"), ((1, 2), 2),
    (("absent", "present"), "present"),
])
def test_the_value_meaning_1_is_chosen_by_a_stated_rule(labels: tuple, positive: object) -> None:
    assert positive_of(Column("c", "binary", labels)) == positive
