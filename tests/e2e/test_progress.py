"""``flareflow run`` as a person sees it: each step as it starts and ends, the log in a file, a real duration.

The second run of October 2026 (see ``conftest.py``) is ``flareflow run --month 2026-10``.
"""

from __future__ import annotations

import re
from pathlib import Path

from pipeline_runs import DAG_ID, TASKS_IN_ORDER
from postgres_helpers import query

from flareflow.local.stack import Stack

NVFLARE_STEPS = ("check_data", "federated_stats", "federated_training", "federated_shap")
SITES = "sites cleveland, hungary, switzerland, va-long-beach"


def test_each_step_shows_when_it_starts_and_ends_with_its_job_and_sites(second_run_cli) -> None:
    lines = second_run_cli.stdout.splitlines()
    assert lines[0] == "running federated_retraining for 2026-10"
    for step in TASKS_IN_ORDER:
        started = [line for line in lines if re.search(rf"▶ {step}\s+started$", line)]
        ended = [line for line in lines if re.search(rf"✓ {step}\s+success\s+\d", line)]
        assert len(started) == len(ended) == 1, (step, second_run_cli.stdout)
        assert lines.index(started[0]) < lines.index(ended[0])
        if step in NVFLARE_STEPS:
            assert re.search(r"NVFlare job [0-9a-f-]{36}  " + SITES + "$", ended[0]), ended[0]
    assert any(re.search(r"✓ register_model\s+success.*model 2026\.10\.\d+ (champion|challenger)$", line)
               for line in lines)
    assert any(re.search(r"- approve_promotion\s+skipped", line) for line in lines)  # automatic promotion
    assert re.search(r"^run manual__\S+ succeeded in \d", lines[-1])


def test_the_full_log_goes_to_the_file_it_names_and_no_warning_to_the_terminal(second_run_cli) -> None:
    (path,) = re.findall(r"^full Airflow log: (\S+)$", second_run_cli.stdout, re.M)
    log = Path(path).read_text()
    assert "[DAG TEST] end task task_id=refresh_dashboard" in log
    terminal = second_run_cli.stdout + second_run_cli.stderr
    for noise in ("Warning", "[warning", "DAG TEST"):
        assert noise not in terminal, noise
    assert len(second_run_cli.stdout.splitlines()) < 40


def test_the_run_lasts_in_airflow_as_long_as_it_really_took(stack: Stack, second_run_cli) -> None:
    ((start, end, conf),) = query(
        stack, "SELECT start_date, end_date, conf FROM dag_run WHERE dag_id = %s AND run_id = %s",
        DAG_ID, second_run_cli.run_id, database="flareflow_airflow")
    # the UI's duration (end - start) is the run's own, not since a logical date's midnight
    assert 0 < (end - start).total_seconds() <= second_run_cli.wall_s
    assert (conf or {}).get("data_month") == "2026-10"
