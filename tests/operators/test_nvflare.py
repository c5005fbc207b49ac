"""NVFlareJobOperator's helpers (the operator itself runs on the real federation in tests/failures,
tests/e2e and tests/secure; the hook and trigger have tests of their own beside this folder)."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from flareflow.operators.nvflare import NVFlareJobFailed, NVFlareJobOperator, NVFlareResultRejected, submit_token


def test_submit_token_is_stable_valid_and_moves_on_after_a_failed_job() -> None:
    args = {"config": {"x": 1}, "until": "2026-11-01"}
    token = submit_token("dag", "manual__2026-11-01T00:00:00+00:00", "federated_stats", args, 1)
    assert token == submit_token("dag", "manual__2026-11-01T00:00:00+00:00", "federated_stats", args, 1)
    assert re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", token)
    assert token != submit_token("dag", "manual__2026-11-01T00:00:00+00:00", "federated_stats", args, 2)
    assert token != submit_token("dag", "manual__2026-11-02T00:00:00+00:00", "federated_stats", args, 1)
    assert token != submit_token("dag", "manual__2026-11-01T00:00:00+00:00", "federated_stats", {**args, "x": 2}, 1)


# -- judging a completed job's result (the data check) ----------------------------------------------------
def _operator(job: str) -> NVFlareJobOperator:
    return NVFlareJobOperator(task_id="check_data", job=job, config_job="stats")


def test_a_result_with_problems_fails_the_task_with_all_of_them_and_is_not_retried() -> None:
    reports = {"north": {"file": "missing", "file_name": "records.csv"},
               "south": {"file": "empty", "file_name": "records.csv"}}
    with pytest.raises(NVFlareResultRejected) as rejected:
        _operator("fl_tasks.check.job")._judge("job-1", {"sites": reports})
    assert str(rejected.value) == (
        "check_data: NVFlare job job-1 completed, and its result has 2 problem(s):\n"
        "  - north: no data file records.csv in the site's data folder\n"
        "  - south: records.csv is empty (not even a header line)")
    assert isinstance(rejected.value, AirflowFailException) and isinstance(rejected.value, NVFlareJobFailed)


def test_jobs_without_a_judge_pass_and_a_clean_result_passes() -> None:
    _operator("fl_tasks.stats.job")._judge("job-1", {"anything": 1})
    _operator("fl_tasks.check.job")._judge("job-1", {"sites": {}})


class _NoJobs:
    def list_jobs(self, submit_token: str) -> list:
        self.token = submit_token
        return []


def test_a_judged_job_runs_anew_at_every_try_others_are_found_again() -> None:
    def token(job: str, try_number: int) -> str:
        session, ti = _NoJobs(), SimpleNamespace(dag_id="d", run_id="r", task_id="t", try_number=try_number)
        assert _operator(job)._existing_job(session, {"ti": ti}, {"until": "2026-11-01"}) == (session.token, None)
        return session.token

    assert token("fl_tasks.check.job", 1) != token("fl_tasks.check.job", 2)
    assert token("fl_tasks.stats.job", 1) == token("fl_tasks.stats.job", 2)
