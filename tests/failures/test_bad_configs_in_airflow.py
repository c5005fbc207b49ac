"""An invalid config fails the DAG run at its first task (issue 3, failure path 4).

Cases of the bad-config corpus (``tests/config/bad_configs``) are run as the config folder of a real
``airflow dags test``: the run must fail at ``validate_config`` with the file, key path and reason in its
output, and no NVFlare job may be submitted.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from failure_injection import Federation

from flareflow.local.cli import DAG_ID
from flareflow.paths import CONFIG_DIR_ENV

BAD_CONFIGS = Path(__file__).resolve().parents[1] / "config" / "bad_configs"
#: corpus case -> the logical date of its run (a month of its own)
CASES = {
    "duplicate_yaml_key": "2026-08-01T03:00:00+00:00",  # a YAML-level defect in train.yaml
    "label_made_a_feature_in_train_yaml": "2026-07-01T03:00:00+00:00",  # a cross-field defect in a job file
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_config_fails_validate_config_naming_file_key_and_reason(
    case: str, federation: Federation, airflow, tmp_path: Path,
) -> None:
    expected = yaml.safe_load((BAD_CONFIGS / case / "expected.yaml").read_text())
    assert not expected.get("xfail_reason"), f"{case} is a case the schema still gets wrong"
    configs = tmp_path / case
    shutil.copytree(BAD_CONFIGS / case, configs, ignore=shutil.ignore_patterns("expected.yaml"))
    before = federation.job_ids()

    code, output = airflow("dags", "test", DAG_ID, CASES[case], env={CONFIG_DIR_ENV: str(configs)}).wait(300)

    assert code != 0, output[-4000:]
    where = f"{configs / expected['file']}: {expected['key_path']}: "
    error_lines = [line for line in output.splitlines() if "ConfigError" in line and where in line]
    assert error_lines, f"no ConfigError naming {where!r}:\n{output[-6000:]}"
    assert any(expected["reason"] in line for line in error_lines), error_lines
    started = [line.split("task_id=")[1].split()[0] for line in output.splitlines()
               if "[DAG TEST] starting task_id=" in line]
    assert started == ["validate_config", "discard_failed_run"], started
    assert federation.job_ids() == before
