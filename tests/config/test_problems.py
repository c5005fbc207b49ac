"""Every config problem at once, each located; trigger params; files found and read exactly; read_schedule.

The corpus (``bad_configs/``) holds one defect per case; these tests cover what a corpus case cannot:
several defects together, trigger params, the folder itself, and the error object.
"""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from flareflow.config import (
    DEFAULT_FILE,
    ConfigError,
    Problem,
    Schedule,
    load_pipeline_config,
    load_run_config,
    read_schedule,
    read_trigger_params,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TRIGGER = "trigger params"


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    target = tmp_path / "configs"
    shutil.copytree(CONFIGS, target)
    return target


def _append(path: Path, text: str) -> None:
    path.write_text((path.read_text() if path.exists() else "") + text)


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))


def _problems(config_dir: Path, overrides: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        load_pipeline_config(config_dir, overrides)
    return [(Path(p.file).name if p.file != TRIGGER else TRIGGER, p.key_path) for p in info.value.problems]


# --- all at once


def test_every_problem_in_every_file_comes_in_one_error(configs: Path) -> None:
    _replace(configs / DEFAULT_FILE, "  seed: 0 ", "  seed: -1 ")
    _replace(configs / DEFAULT_FILE, 'binary: {sex: Male, fbs: "true", exang: "true"}',
             'binary: {sex: Male, fbs: true, exang: "true"}')
    _append(configs / "stats.yaml", "warehouse: {conn_id: other}\n")
    _append(configs / "train.yaml", "federation: {task_timeout_s: 0.5}\n")
    _replace(configs / "shap.yaml", "  background_size: 20", "  background_size: 0\n  sampels: 10")
    with pytest.raises(ConfigError) as info:
        load_pipeline_config(configs, {"training": {"rounds": 0}})
    err = info.value
    located = [(Path(p.file).name if p.file != TRIGGER else p.file, p.key_path) for p in err.problems]
    assert located == [
        (DEFAULT_FILE, "data.features.binary.fbs"), (DEFAULT_FILE, "training.seed"),
        ("stats.yaml", "warehouse"), ("train.yaml", "federation.task_timeout_s"),
        ("shap.yaml", "shap.background_size"), ("shap.yaml", "shap.sampels"),
        (TRIGGER, "training.rounds"),
    ]
    # the first problem stays on the error itself, as before
    assert (Path(err.file).name, err.key_path) == (DEFAULT_FILE, "data.features.binary.fbs")
    assert err.reason == err.problems[0].reason
    message = str(err)
    assert message.startswith("7 config problems:\n")
    assert all(str(p) in message for p in err.problems)
    assert "did you mean samples?" in message
    assert "(got -1)" in message and "(got True)" in message


def test_a_problem_of_default_yaml_is_reported_once_not_per_job(configs: Path) -> None:
    _replace(configs / DEFAULT_FILE, "  rounds: 10 ", "  rounds: 0  ")
    assert _problems(configs) == [(DEFAULT_FILE, "training.rounds")]


def test_a_bad_file_does_not_hide_the_other_files_problems(configs: Path) -> None:
    (configs / "stats.yaml").write_text("stats: [unclosed\n")
    _replace(configs / "train.yaml", "  local_epochs: 5", "  local_epochs: 0")
    problems = _problems(configs)
    assert problems == [("stats.yaml", ""), ("train.yaml", "training.local_epochs")]


def test_long_values_are_shortened() -> None:
    problem = Problem("default.yaml", "mlflow.experiment", "bad", "x" * 59 + "…")
    assert str(problem) == f"default.yaml: mlflow.experiment: bad (got {'x' * 59}…)"
    with pytest.raises(ConfigError) as info:
        load_pipeline_config(CONFIGS, {"mlflow": {"registered_model": "a b" * 100}})
    assert info.value.problems[0].value is not None and len(info.value.problems[0].value) == 60


def test_config_error_survives_pickling() -> None:
    """Airflow may pickle a task's exception: every problem must come through."""
    err = ConfigError(problems=[Problem("a.yaml", "x", "bad", "1"), Problem("b.yaml", "", "worse")])
    copy = pickle.loads(pickle.dumps(err))
    assert copy.problems == err.problems and str(copy) == str(err) and copy.file == "a.yaml"


# --- settings every job must agree on; settings only some jobs read


def test_shared_settings_repeated_unchanged_in_a_job_file_are_fine(configs: Path) -> None:
    default = yaml.safe_load((configs / DEFAULT_FILE).read_text())
    _append(configs / "train.yaml", yaml.safe_dump({"data": default["data"]}))
    _append(configs / "shap.yaml", "training:\n  seed: 7\n")
    config = load_pipeline_config(configs)
    assert config.job("shap").training.seed == 7
    assert config.job("train").training.seed == 0


def test_two_job_files_disagreeing_are_both_blamed(configs: Path) -> None:
    _append(configs / "train.yaml", "data: {window_months: 6}\n")
    _append(configs / "shap.yaml", "data: {window_months: 12}\n")
    assert _problems(configs) == [("train.yaml", "data.window_months"), ("shap.yaml", "data.window_months")]


def test_trigger_overrides_of_shared_settings_apply_to_every_job() -> None:
    config = load_pipeline_config(CONFIGS, {"data": {"window_months": 6}, "federation": {"sites": ["hungary"]}})
    assert {config.job(job).data.window_months for job in ("stats", "train", "shap")} == {6}


def test_a_job_file_may_set_every_section_its_job_reads(configs: Path) -> None:
    _append(configs / "stats.yaml", "federation: {job_timeout_s: 1800}\nprivacy: {min_count: 12}\n")
    _append(configs / "train.yaml", "mlflow: {champion_tolerance: 0.02}\n")
    config = load_pipeline_config(configs)
    assert config.job("stats").federation.job_timeout_s == 1800
    assert config.job("train").federation.job_timeout_s == 3600
    assert config.job("stats").privacy.min_count == 12
    assert config.job("train").mlflow.champion_tolerance == 0.02


# --- trigger params


def test_trigger_params_become_overrides() -> None:
    assert read_trigger_params({"rounds": 4, "config_overrides": {"shap": {"samples": 50}}}) == (
        {"shap": {"samples": 50}, "training": {"rounds": 4}}, [])
    assert read_trigger_params({"rounds": None, "config_overrides": {}}) == ({}, [])
    assert read_trigger_params({"rounds": 3, "config_overrides": {"training": {"rounds": 3}}}) == (
        {"training": {"rounds": 3}}, [])


@pytest.mark.parametrize(
    ("params", "key_path", "reason"),
    [
        ({"round": 5}, "round", "unknown trigger param: did you mean rounds?"),
        ({"config_override": {"training": {"rounds": 3}}}, "config_override", "did you mean config_overrides?"),
        ({"training": {"rounds": 3}}, "training", "pass it inside config_overrides"),
        ({"rounds": "5"}, "rounds", "whole number"),
        ({"rounds": True}, "rounds", "whole number"),
        ({"rounds": 3, "config_overrides": {"training": {"rounds": 4}}}, "rounds", "give the rounds once"),
        ({"config_overrides": ["training"]}, "config_overrides", "must be a mapping"),
    ],
)
def test_bad_trigger_params_are_named(params: dict[str, Any], key_path: str, reason: str) -> None:
    _, problems = read_trigger_params(params)
    assert [(p.file, p.key_path) for p in problems] == [(TRIGGER, key_path)]
    assert reason in problems[0].reason
    with pytest.raises(ConfigError):
        load_run_config(CONFIGS, params)


def test_params_and_files_are_reported_together(configs: Path) -> None:
    _replace(configs / DEFAULT_FILE, "  rounds: 10 ", "  rounds: 0  ")
    with pytest.raises(ConfigError) as info:
        load_run_config(configs, {"round": 5, "config_overrides": {"schedule": {"cron": "0 4 1 * *"}}})
    located = [(Path(p.file).name if p.file != TRIGGER else p.file, p.key_path) for p in info.value.problems]
    assert located == [(DEFAULT_FILE, "training.rounds"), (TRIGGER, "schedule"), (TRIGGER, "round")]


def test_the_dag_params_are_accepted() -> None:
    config = load_run_config(CONFIGS, {"rounds": 2, "config_overrides": {"training": {"seed": 1}}})
    assert config.job("train").training.rounds == 2
    assert config.job("shap").training.seed == 1


# --- the folder and its files


def test_config_folder_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "configs").write_text("not a folder")
    assert _problems(tmp_path / "configs") == [("configs", "")]
    with pytest.raises(ConfigError, match="not a folder"):
        load_pipeline_config(tmp_path / "configs")


def test_config_folder_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config folder not found") as info:
        load_pipeline_config(tmp_path / "nowhere")
    assert len(info.value.problems) == 1


def test_symlinked_files_are_followed(configs: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (configs / "train.yaml").rename(shared / "training-settings.yaml")
    _append(shared / "training-settings.yaml", "federation: {job_timeout_s: 1200}\n")
    os.symlink(shared / "training-settings.yaml", configs / "train.yaml")
    assert load_pipeline_config(configs).job("train").federation.job_timeout_s == 1200


def test_hidden_and_other_files_are_ignored(configs: Path) -> None:
    (configs / ".train.yaml.swp").write_bytes(b"\x00\xff")
    os.symlink("user@host.1234", configs / ".#default.yaml")  # an editor's lock file: a dangling symlink
    (configs / "notes.md").write_text("notes\n")
    assert load_pipeline_config(configs).job("train").training.rounds == 10


@pytest.mark.parametrize("name", ["TRAIN.YAML", "Train.yaml", "stats.YML", "shap.Yaml"])
def test_a_config_file_name_in_another_case_is_an_error(configs: Path, name: str) -> None:
    (configs / name).write_text("training: {rounds: 25}\n")
    with pytest.raises(ConfigError) as info:
        load_pipeline_config(configs)
    assert Path(info.value.file) == configs / name
    assert "not a config file" in info.value.reason and "rename it" in info.value.reason


def test_a_fifo_is_refused_without_hanging(configs: Path) -> None:
    (configs / "shap.yaml").unlink()
    os.mkfifo(configs / "shap.yaml")
    assert _problems(configs) == [("shap.yaml", "")]


# --- read_schedule: never raises, falls back when default.yaml is unusable


def test_read_schedule_reads_a_readable_default_despite_other_problems(configs: Path) -> None:
    _replace(configs / DEFAULT_FILE, 'cron: "0 3 1 * *"', 'cron: "30 2 * * 1"')
    _replace(configs / DEFAULT_FILE, "  rounds: 10 ", "  rounds: 0  ")
    (configs / "train.yaml").write_bytes("# Zürich\n".encode("latin-1"))
    assert read_schedule(configs) == Schedule(cron="30 2 * * 1", timezone="UTC")


@pytest.mark.parametrize(
    "make",
    [
        lambda d: (d / DEFAULT_FILE).write_bytes("# Zürich\nschedule: {cron: '5 4 * * *'}\n".encode("latin-1")),
        lambda d: (d / DEFAULT_FILE).write_bytes("schedule: {cron: '5 4 * * *'}\n".encode("utf-16")),
        lambda d: (d / DEFAULT_FILE).write_bytes("schedule: {cron: '5 4 * * *'}\n".encode("utf-16-le")),
        lambda d: (d / DEFAULT_FILE).mkdir(),
        lambda d: os.symlink("missing.yaml", d / DEFAULT_FILE),
        lambda d: os.symlink(DEFAULT_FILE, d / DEFAULT_FILE),
        lambda d: os.mkfifo(d / DEFAULT_FILE),
        lambda d: (d / DEFAULT_FILE).write_text("schedule: {cron: '0 3 30 2 *'}\n"),
        lambda d: (d / DEFAULT_FILE).write_text("schedule: {cron: '0 0 3 1 * *'}\n"),
        lambda d: (d / DEFAULT_FILE).write_text("schedule: {cron: '@monthly'}\n"),
        lambda d: (d / DEFAULT_FILE).write_text("schedule: {timezone: localtime}\n"),
        lambda d: (d / DEFAULT_FILE).write_text("schedule: !!python/object:os.system {}\n"),
        lambda d: (d / DEFAULT_FILE).write_text("a: &a [*a]\n"),
        lambda d: (d / DEFAULT_FILE).write_text("[" * 1100),
    ],
    ids=["latin-1", "utf-16", "utf-16-no-bom", "folder", "dangling-symlink", "symlink-loop", "fifo",
         "cron-never-fires", "cron-six-fields", "cron-preset", "timezone-localtime", "python-tag",
         "recursive-alias", "deep-nesting"],
)
def test_read_schedule_falls_back_for_any_unusable_default(tmp_path: Path, make: Any) -> None:
    make(tmp_path)
    assert read_schedule(tmp_path) == Schedule()
    with pytest.raises(ConfigError):
        load_pipeline_config(tmp_path)


def test_read_schedule_with_the_config_folder_a_file(tmp_path: Path) -> None:
    (tmp_path / "configs").write_text("schedule: {cron: '5 4 * * *'}\n")
    assert read_schedule(tmp_path / "configs") == Schedule()
