"""A config problem never breaks DAG parsing: the DAG loads, and its validation task names the problem.

Each config folder below is given to the real DAG file through ``FLAREFLOW_CONFIG_DIR`` and parsed by
Airflow's own DagBag, as the DAG processor does. The DAG must load without import errors, with the
schedule of a readable ``default.yaml`` or the built-in one, and ``validate_config`` must fail with a
ConfigError naming the file.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from flareflow.config import DEFAULT_FILE, ConfigError
from flareflow.local.cli import DAG_ID
from flareflow.paths import CONFIG_DIR_ENV

REPO = Path(__file__).resolve().parents[2]
DAG_FILE = REPO / "dags" / "federated_retraining.py"
FALLBACK = ("0 3 1 * *", "UTC")


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "configs"
    shutil.copytree(REPO / "configs", target)
    return target


def _rewrite(path: Path, old: str, new: str, encoding: str = "utf-8") -> None:
    path.write_bytes(path.read_text().replace(old, new).encode(encoding))


def _latin1(tmp_path: Path) -> Path:
    configs = _copy(tmp_path)
    _rewrite(configs / DEFAULT_FILE, "# flareflow:", "# flareflow (Zürich):", "latin-1")
    return configs


def _utf16(tmp_path: Path) -> Path:
    configs = _copy(tmp_path)
    _rewrite(configs / DEFAULT_FILE, "# flareflow:", "# flareflow:", "utf-16")
    return configs


def _folder(tmp_path: Path) -> Path:
    configs = _copy(tmp_path)
    (configs / DEFAULT_FILE).unlink()
    (configs / DEFAULT_FILE).mkdir()
    return configs


def _dangling(tmp_path: Path) -> Path:
    configs = _copy(tmp_path)
    (configs / DEFAULT_FILE).unlink()
    os.symlink("../shared/default.yaml", configs / DEFAULT_FILE)
    return configs


def _config_dir_is_a_file(tmp_path: Path) -> Path:
    (tmp_path / "configs").write_text((REPO / "configs" / DEFAULT_FILE).read_text())
    return tmp_path / "configs"


def _never_fires(tmp_path: Path) -> Path:
    configs = _copy(tmp_path)
    _rewrite(configs / DEFAULT_FILE, 'cron: "0 3 1 * *"', 'cron: "0 3 30 2 *"')
    return configs


def _broken_job_file(tmp_path: Path) -> Path:
    """default.yaml is fine (its own schedule is used); a job file is not."""
    configs = _copy(tmp_path)
    _rewrite(configs / DEFAULT_FILE, 'cron: "0 3 1 * *"', 'cron: "30 2 1 * *"')
    _rewrite(configs / DEFAULT_FILE, "timezone: UTC", "timezone: Europe/Berlin")
    (configs / "train.yaml").write_bytes("training: {rounds: 3}\n".encode("utf-16"))
    return configs


CASES: dict[str, tuple[Callable[[Path], Path], tuple[str, str], str]] = {
    # case: (config folder, expected schedule, the file the validation error names)
    "latin-1 default.yaml": (_latin1, FALLBACK, DEFAULT_FILE),
    "utf-16 default.yaml": (_utf16, FALLBACK, DEFAULT_FILE),
    "folder as default.yaml": (_folder, FALLBACK, DEFAULT_FILE),
    "dangling default.yaml": (_dangling, FALLBACK, DEFAULT_FILE),
    "config dir is a file": (_config_dir_is_a_file, FALLBACK, "configs"),
    "config dir missing": (lambda tmp: tmp / "nowhere", FALLBACK, "nowhere"),
    "cron never fires": (_never_fires, FALLBACK, DEFAULT_FILE),
    "broken job file": (_broken_job_file, ("30 2 1 * *", "Europe/Berlin"), "train.yaml"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_dag_loads_and_its_validation_names_the_problem(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    make, schedule, blamed = CASES[case]
    configs = make(tmp_path)
    monkeypatch.setenv(CONFIG_DIR_ENV, str(configs))

    bag = DagBag(dag_folder=DAG_FILE)

    assert bag.import_errors == {}
    dag = bag.dags[DAG_ID]
    assert (dag.timetable.expression, str(dag.timetable.timezone)) == schedule
    with pytest.raises(ConfigError) as info:
        dag.task_dict["validate_config"].python_callable(params={})
    assert Path(info.value.file).name == blamed, info.value
