"""Which data and configs the local stack uses: ``up --data``, what it remembers, the demo's default.

Nothing is started here: a wrong source fails before PostgreSQL, MLflow or NVFlare.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flareflow.local.cli import data_source, main
from flareflow.local.sites import DataSource, SiteDataError
from flareflow.local.stack import HOME_ENV, Stack, demo_source, project_dir
from flareflow.paths import CONFIG_DIR_ENV

CONFIGS = project_dir() / "configs"


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Stack:
    monkeypatch.delenv(CONFIG_DIR_ENV, raising=False)
    return Stack(home=tmp_path / "home", project=project_dir())


def test_without_data_up_loads_what_it_loaded_last_else_the_demo(stack: Stack, tmp_path: Path) -> None:
    assert data_source(stack, None, None, None) == demo_source()
    mine = DataSource(tmp_path / "mine.csv", "clinic", "seen")
    stack._save_state(data_source=mine.to_state())
    assert data_source(stack, None, None, None) == mine


def test_a_file_needs_its_site_column_and_a_folder_brings_its_own(stack: Stack, tmp_path: Path) -> None:
    (tmp_path / "all.csv").write_text("clinic\nA\n")
    with pytest.raises(SiteDataError, match="--site-column"):
        data_source(stack, str(tmp_path / "all.csv"), None, None)
    with pytest.raises(SiteDataError, match="describe the file given with --data"):
        data_source(stack, None, "clinic", None)
    assert data_source(stack, str(tmp_path / "all.csv"), "clinic", "seen") == DataSource(
        (tmp_path / "all.csv").resolve(), "clinic", "seen")
    (tmp_path / "source.yaml").write_text("file: all.csv\nsite_column: clinic\n")
    assert data_source(stack, str(tmp_path), None, "seen") == DataSource((tmp_path / "all.csv").resolve(),
                                                                          "clinic", "seen")


def test_the_config_folder_is_the_given_else_the_environment_else_the_remembered(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert stack.config_dir == CONFIGS
    stack._save_state(config_dir=str(tmp_path / "remembered"))
    assert stack.config_dir == tmp_path / "remembered"
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path / "env"))
    assert stack.config_dir == tmp_path / "env"
    explicit = Stack(home=stack.home, project=stack.project, configs=tmp_path / "given")
    assert explicit.config_dir == tmp_path / "given"


def test_a_file_that_does_not_fit_the_config_fails_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "all.csv").write_text("clinic,admission_date\nCleveland,2026-01-01\nMars Base,2026-01-01\n")
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    monkeypatch.setenv(CONFIG_DIR_ENV, str(CONFIGS))
    code = main(["up", "--data", str(tmp_path / "all.csv"), "--site-column", "clinic",
                 "--date-column", "admission_date"])
    error = capsys.readouterr().err
    assert code == 2
    assert "rows for sites the config lacks: 'Mars Base' -> mars-base" in error
    assert "configured sites without rows: ['hungary', 'switzerland', 'va-long-beach']" in error
    assert not (tmp_path / "home" / "postgres").exists()  # nothing was started


def test_a_date_column_other_than_the_configs_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    monkeypatch.setenv(CONFIG_DIR_ENV, str(CONFIGS))
    demo = demo_source()
    code = main(["up", "--data", str(demo.file), "--site-column", demo.site_column, "--date-column", "id"])
    error = capsys.readouterr().err
    assert code == 2
    assert "dated by 'id' but" in error and "data.date_column 'admission_date'" in error
