"""Tests of the pipeline config: loading, merging, overrides, fingerprint and the bad-config corpus.

Each folder under ``bad_configs/`` is a full config folder differing from ``configs/`` by one defect,
plus an ``expected.yaml`` naming the file, key path and reason of the first problem the ConfigError
must report, and how many problems it reports (``problems``, default 1: nothing but the defect). A case
the current schema gets wrong carries ``xfail_reason`` and is expected to fail (strictly). Some cases
hold what git keeps as is: symlinks (dangling, a loop), a folder named ``default.yaml``, files in
Latin-1 or UTF-16.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from flareflow.config import (
    CONFIG_FILES,
    DEFAULT_FILE,
    JOBS,
    ConfigError,
    Schedule,
    fingerprint,
    load_pipeline_config,
    read_schedule,
)

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
BAD_CONFIGS = Path(__file__).resolve().parent / "bad_configs"
EXPECTED_KEYS = {"description", "file", "key_path", "reason", "problems", "xfail_reason"}
MIN_CASES = 140


def _copy_configs(tmp_path: Path) -> Path:
    target = tmp_path / "configs"
    shutil.copytree(CONFIGS, target)
    return target


def _edit(path: Path, change: Mapping[str, Any]) -> None:
    """Set dotted keys (``{"training.rounds": 3}``) in a YAML file, creating sections as needed."""
    content = yaml.safe_load(path.read_text()) if path.exists() else None
    content = content or {}
    for dotted, value in change.items():
        *parents, last = dotted.split(".")
        node = content
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    path.write_text(yaml.safe_dump(content, sort_keys=False))


def _reverse_keys(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _reverse_keys(node[key]) for key in reversed(list(node))}
    return node


def _error(config_dir: Path, overrides: Mapping[str, Any] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_pipeline_config(config_dir, overrides)
    return info.value


# --- the good configs


def test_good_configs_load() -> None:
    config = load_pipeline_config(CONFIGS)
    assert set(config.jobs) == set(JOBS)
    for job in JOBS:
        cfg = config.job(job)
        assert cfg.federation.sites == ["cleveland", "hungary", "switzerland", "va-long-beach"]
        assert cfg.data.label.column == "num"
        assert cfg.training.rounds == 10
        assert cfg.mlflow.champion_tolerance == 0.01
    assert len(config.fingerprint) == 64
    int(config.fingerprint, 16)
    assert config.fingerprint == fingerprint(config.to_dict())


def test_job_file_overrides_only_its_job(tmp_path: Path) -> None:
    configs = _copy_configs(tmp_path)
    _edit(configs / "train.yaml", {"training.rounds": 25})
    _edit(configs / "stats.yaml", {"stats.histogram_bins": 7})
    config = load_pipeline_config(configs)
    assert config.job("train").training.rounds == 25
    assert config.job("stats").training.rounds == 10
    assert config.job("shap").training.rounds == 10
    # a nested override merges into the section, keeping the other keys of default.yaml
    assert config.job("train").training.learning_rate == 0.01
    assert config.job("stats").stats.histogram_bins == 7
    assert config.job("train").stats.histogram_bins == 10


def test_job_file_is_optional(tmp_path: Path) -> None:
    configs = _copy_configs(tmp_path)
    for job in JOBS:
        (configs / f"{job}.yaml").unlink()
    config = load_pipeline_config(configs)
    assert set(config.jobs) == set(JOBS)
    assert config.job("train").training.rounds == 10


def test_missing_default_file(tmp_path: Path) -> None:
    configs = _copy_configs(tmp_path)
    (configs / DEFAULT_FILE).unlink()
    err = _error(configs)
    assert Path(err.file) == configs / DEFAULT_FILE
    assert err.key_path == ""
    assert "not found" in err.reason


# --- trigger overrides


def test_trigger_overrides_apply_on_top_of_job_files(tmp_path: Path) -> None:
    configs = _copy_configs(tmp_path)
    _edit(configs / "train.yaml", {"training.rounds": 25})
    config = load_pipeline_config(configs, {"training": {"rounds": 3}, "shap": {"samples": 50}})
    for job in JOBS:
        assert config.job(job).training.rounds == 3
        assert config.job(job).training.local_epochs == 5
        assert config.job(job).shap.samples == 50
    # shap.yaml's own keys survive a trigger override of another key in the same section
    assert config.job("shap").shap.background_size == 20


@pytest.mark.parametrize(
    ("overrides", "key_path", "reason"),
    [
        ({"training": {"rounds": 0}}, "training.rounds", "greater than or equal to 1"),
        ({"training": {"rounds": "many"}}, "training.rounds", "valid integer"),
        ({"training": {"rounds": "3"}}, "training.rounds", "valid integer"),
        ({"training": {"rounds": True}}, "training.rounds", "valid integer"),
        ({"training": {"rounds": 3.0}}, "training.rounds", "valid integer"),
        ({"training": {"learning_rate": "0.1"}}, "training.learning_rate", "valid number"),
        ({"training": {"learning_rate": float("nan")}}, "training.learning_rate", "finite"),
        ({"privacy": {"max_noise_level": 0.05}}, "privacy.max_noise_level", "exceeds max_noise_level"),
        ({"schedule": {"timezone": "UTC"}}, "schedule", "read when the DAG file is parsed"),
        ({"training": {"epochs": 3}}, "training.epochs", "did you mean local_epochs?"),
        ({"training": {"histogram_bins": 3}}, "training.histogram_bins", "histogram_bins belongs in stats"),
        ({"federation": {"job_timeout_s": 0.5}}, "federation.job_timeout_s", "whole seconds"),
        ({"training": {"seed": -1}}, "training.seed", "greater than or equal to 0"),
        ({"warehouse": {"conn_id": "a b"}}, "warehouse.conn_id", "match pattern"),
        ({"federation": {"sites": []}}, "federation.sites", "at least 1 item"),
        ({"data": {"label": {"column": "age"}}}, "data.label.column", "used as the label and a numeric feature"),
        ({"data": {"delimiter": ";;"}}, "data.delimiter", "one character"),
        ({"mlflow": {"champion_tolerance": 1}}, "mlflow.champion_tolerance", "less than 1"),
        ({"mlflow": {"champion_tolerance": True}}, "mlflow.champion_tolerance", "valid number"),
    ],
)
def test_bad_trigger_override_is_blamed_on_trigger_params(
    overrides: dict[str, Any], key_path: str, reason: str
) -> None:
    err = _error(CONFIGS, overrides)
    assert err.file == "trigger params"
    assert err.key_path == key_path
    assert reason in err.reason


def test_an_int_is_a_valid_float() -> None:
    config = load_pipeline_config(CONFIGS, {"training": {"learning_rate": 1}, "federation": {"gate_timeout_s": 60}})
    assert config.job("train").training.learning_rate == 1.0
    assert isinstance(config.job("train").training.learning_rate, float)
    assert config.job("stats").federation.gate_timeout_s == 60


def test_bad_job_file_is_blamed_even_with_trigger_params(tmp_path: Path) -> None:
    configs = _copy_configs(tmp_path)
    _edit(configs / "train.yaml", {"training.rounds": 0})
    err = _error(configs, {"shap": {"samples": 50}})
    assert Path(err.file) == configs / "train.yaml"
    assert err.key_path == "training.rounds"


# --- the config folder and its YAML


@pytest.mark.parametrize("stray", ["trian.yaml", "train.yml", "defaults.yaml", "shap.yaml.yaml"])
def test_stray_yaml_file_in_the_folder_is_rejected(tmp_path: Path, stray: str) -> None:
    configs = _copy_configs(tmp_path)
    (configs / stray).write_text("training: {rounds: 25}\n")
    err = _error(configs)
    assert Path(err.file) == configs / stray
    assert err.key_path == ""
    assert "not a config file" in err.reason


def test_other_files_in_the_folder_are_ignored(tmp_path: Path) -> None:
    configs = _copy_configs(tmp_path)
    (configs / "README.md").write_text("notes\n")
    (configs / "train.yaml.orig").write_text("training: {rounds: 25}\n")
    assert load_pipeline_config(configs).job("train").training.rounds == 10


def test_yaml_anchors_and_merge_keys_are_no_duplicates(tmp_path: Path) -> None:
    configs = _copy_configs(tmp_path)
    (configs / "train.yaml").write_text(
        "training:\n  <<: {rounds: 3, local_epochs: 2}\n  rounds: &r 4\n  seed: *r\n"
    )
    training = load_pipeline_config(configs).job("train").training
    assert (training.rounds, training.local_epochs, training.seed) == (4, 2, 4)


def test_duplicate_key_in_a_list_item_is_located(tmp_path: Path) -> None:
    configs = _copy_configs(tmp_path)
    (configs / "stats.yaml").write_text("stats:\n  histogram_bins: 10\nnotes:\n  - {a: 1, a: 2}\n")
    err = _error(configs)
    assert Path(err.file) == configs / "stats.yaml"
    assert err.key_path == "notes.0.a"
    assert "duplicate key (line 4)" in err.reason


def test_recursive_yaml_alias_does_not_hang(tmp_path: Path) -> None:
    configs = _copy_configs(tmp_path)
    (configs / "shap.yaml").write_text("loop: &loop [*loop, {inner: *loop}]\n")
    err = _error(configs)
    assert Path(err.file) == configs / "shap.yaml"
    assert err.key_path == "loop.0"
    assert "an alias that contains itself" in err.reason


def test_sites_may_come_from_job_files_alone(tmp_path: Path) -> None:
    configs = _copy_configs(tmp_path)
    default = yaml.safe_load((configs / DEFAULT_FILE).read_text())
    sites = default["federation"].pop("sites")
    (configs / DEFAULT_FILE).write_text(yaml.safe_dump(default))
    for job in JOBS:
        _edit(configs / f"{job}.yaml", {"federation.sites": sites})
    assert load_pipeline_config(configs).job("shap").federation.sites == sites
    _edit(configs / "shap.yaml", {"federation.sites": sites[:2]})
    err = _error(configs)
    assert Path(err.file) == configs / "shap.yaml"
    assert err.key_path == "federation.sites"


def test_same_sites_from_a_job_file_are_accepted(tmp_path: Path) -> None:
    configs = _copy_configs(tmp_path)
    _edit(configs / "train.yaml", {"federation.sites": ["cleveland", "hungary", "switzerland", "va-long-beach"]})
    assert load_pipeline_config(configs).job("train").federation.sites[0] == "cleveland"


# --- fingerprint


def test_fingerprint_is_stable() -> None:
    first = load_pipeline_config(CONFIGS)
    second = load_pipeline_config(CONFIGS)
    assert first.fingerprint == second.fingerprint
    assert fingerprint(first.to_dict()) == first.fingerprint


def test_fingerprint_ignores_key_order_and_comments(tmp_path: Path) -> None:
    configs = _copy_configs(tmp_path)
    for name in CONFIG_FILES:
        path = configs / name
        reordered = _reverse_keys(yaml.safe_load(path.read_text()))
        path.write_text(yaml.safe_dump(reordered, sort_keys=False))
    assert (configs / DEFAULT_FILE).read_text() != (CONFIGS / DEFAULT_FILE).read_text()
    assert load_pipeline_config(configs).fingerprint == load_pipeline_config(CONFIGS).fingerprint


def test_fingerprint_of_a_mapping_ignores_key_order() -> None:
    assert fingerprint({"a": 1, "b": {"c": 2, "d": [3, 4]}}) == fingerprint({"b": {"d": [3, 4], "c": 2}, "a": 1})
    assert fingerprint({"b": {"d": [3, 4]}}) != fingerprint({"b": {"d": [4, 3]}})


def test_fingerprint_ignores_override_of_the_same_value() -> None:
    base = load_pipeline_config(CONFIGS).fingerprint
    assert load_pipeline_config(CONFIGS, {"training": {"rounds": 10}}).fingerprint == base


@pytest.mark.parametrize(
    ("file", "change"),
    [
        (DEFAULT_FILE, {"training.rounds": 11}),
        (DEFAULT_FILE, {"training.learning_rate": 0.02}),
        (DEFAULT_FILE, {"federation.sites": ["cleveland", "hungary", "va-long-beach", "switzerland"]}),
        (DEFAULT_FILE, {"federation.min_sites": 3}),
        (DEFAULT_FILE, {"data.label.positive_above": 1}),
        (DEFAULT_FILE, {"data.features.zero_means_missing": ["chol"]}),
        (DEFAULT_FILE, {"schedule.cron": "0 4 1 * *"}),
        (DEFAULT_FILE, {"mlflow.experiment": "other"}),
        (DEFAULT_FILE, {"mlflow.champion_tolerance": 0.02}),
        ("stats.yaml", {"stats.histogram_bins": 12}),
        ("train.yaml", {"training.local_epochs": 6}),
        ("shap.yaml", {"shap.explainer": "permutation"}),
    ],
)
def test_fingerprint_changes_with_any_value(tmp_path: Path, file: str, change: dict[str, Any]) -> None:
    base = load_pipeline_config(CONFIGS).fingerprint
    configs = _copy_configs(tmp_path)
    _edit(configs / file, change)
    assert load_pipeline_config(configs).fingerprint != base


def test_fingerprint_changes_with_trigger_overrides() -> None:
    base = load_pipeline_config(CONFIGS).fingerprint
    assert load_pipeline_config(CONFIGS, {"training": {"rounds": 4}}).fingerprint != base


# --- ConfigError


def test_config_error_str_names_file_key_path_and_reason() -> None:
    err = ConfigError("configs/train.yaml", "training.rounds", "must be at least 1")
    assert (err.file, err.key_path, err.reason) == ("configs/train.yaml", "training.rounds", "must be at least 1")
    assert str(err) == "configs/train.yaml: training.rounds: must be at least 1"
    assert isinstance(err, ValueError)
    assert str(ConfigError("configs/default.yaml", "", "not valid YAML")) == "configs/default.yaml: not valid YAML"


def test_raised_config_error_str_names_file_key_path_and_reason(tmp_path: Path) -> None:
    configs = _copy_configs(tmp_path)
    _edit(configs / "train.yaml", {"training.rounds": 0})
    message = str(_error(configs))
    assert str(configs / "train.yaml") in message
    assert "training.rounds" in message
    assert "greater than or equal to 1" in message


# --- read_schedule


def test_read_schedule_reads_default_yaml(tmp_path: Path) -> None:
    assert read_schedule(CONFIGS) == Schedule(cron="0 3 1 * *", timezone="UTC")
    configs = _copy_configs(tmp_path)
    _edit(configs / DEFAULT_FILE, {"schedule.cron": "30 2 * * 1", "schedule.timezone": "Europe/Berlin"})
    assert read_schedule(configs) == Schedule(cron="30 2 * * 1", timezone="Europe/Berlin")


@pytest.mark.parametrize(
    "default_text",
    [
        None,  # no default.yaml at all
        "schedule: {cron: '0 3 1 * *'\n",  # YAML syntax error
        "- schedule\n- data\n",  # a list, not a mapping
        "schedule: [0, 3, 1]\n",  # schedule is a list
        "schedule: {cron: 'at dawn'}\n",  # invalid cron
        "schedule: {cron: '5 4 * * *', every: month}\n",  # unknown key
    ],
    ids=["missing", "yaml-syntax", "list-file", "list-section", "bad-cron", "unknown-key"],
)
def test_read_schedule_falls_back_for_unusable_default(tmp_path: Path, default_text: str | None) -> None:
    if default_text is not None:
        (tmp_path / DEFAULT_FILE).write_text(default_text)
    assert read_schedule(tmp_path) == Schedule()


# --- the bad-config corpus


def _cases() -> list[Path]:
    return sorted(p for p in BAD_CONFIGS.iterdir() if p.is_dir()) if BAD_CONFIGS.is_dir() else []


def _expected(case: Path) -> dict[str, Any]:
    return yaml.safe_load((case / "expected.yaml").read_text())


def _case_params() -> list[Any]:
    params = []
    for case in _cases():
        xfail_reason = _expected(case).get("xfail_reason")
        marks = [pytest.mark.xfail(reason=xfail_reason, strict=True, raises=AssertionError)] if xfail_reason else []
        params.append(pytest.param(case, id=case.name, marks=marks))
    return params


def test_corpus_is_large_enough() -> None:
    assert len(_cases()) >= MIN_CASES


@pytest.mark.parametrize("case", _cases(), ids=lambda p: p.name)
def test_corpus_case_is_well_formed(case: Path) -> None:
    expected = _expected(case)
    assert set(expected) <= EXPECTED_KEYS
    assert {"file", "key_path", "reason"} <= set(expected)
    # a file other than the config files is allowed only as the one the case is about (a misspelt job file)
    assert expected["file"] in CONFIG_FILES or (case / expected["file"]).is_file()
    assert isinstance(expected["key_path"], str)
    assert expected["reason"]
    assert (case / DEFAULT_FILE).exists() or (case / DEFAULT_FILE).is_symlink()
    assert {p.name for p in case.iterdir()} <= {*CONFIG_FILES, "expected.yaml", expected["file"]}


@pytest.mark.parametrize("case", _case_params())
def test_bad_config_is_rejected_with_file_key_path_and_reason(case: Path, tmp_path: Path) -> None:
    """The case's one defect is reported, blamed on its file and key path, and nothing else is."""
    expected = _expected(case)
    # expected.yaml is no config file: the loader would reject it as a stray (misspelt) job file
    configs = tmp_path / case.name
    shutil.copytree(case, configs, ignore=shutil.ignore_patterns("expected.yaml"), symlinks=True)
    try:
        load_pipeline_config(configs)
    except ConfigError as err:
        error = err
    else:
        raise AssertionError(f"{case.name}: the config was accepted")
    assert error.file.endswith(expected["file"]), error
    assert Path(error.file) == configs / expected["file"], error
    assert error.key_path == expected["key_path"], error
    assert expected["reason"] in error.reason, error
    assert len(error.problems) == expected.get("problems", 1), error
