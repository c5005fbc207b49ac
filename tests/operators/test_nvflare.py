"""The NVFlare hook, trigger and operator helpers (the live-federation paths run in tests/e2e)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from flareflow.hooks.nvflare import NVFlareUnavailable, SitesMissing, open_session, wait_for_sites
from flareflow.operators.nvflare import NVFlareJobFailed, NVFlareJobOperator, NVFlareResultRejected, submit_token
from flareflow.triggers.nvflare import NVFlareJobTrigger, is_terminal


def test_trigger_serializes_to_its_constructor_arguments() -> None:
    trigger = NVFlareJobTrigger(job_id="j-1", nvflare_conn_id="nvflare_default", poll_interval_s=2.0,
                                timeout_s=60.0, started_at=1700000000.0)
    path, kwargs = trigger.serialize()
    assert path == "flareflow.triggers.nvflare.NVFlareJobTrigger"
    assert NVFlareJobTrigger(**kwargs).serialize() == (path, kwargs)
    json.dumps(kwargs)  # primitives only


def test_terminal_statuses() -> None:
    assert is_terminal("FINISHED:COMPLETED") and is_terminal("FINISHED:ABORTED")
    assert not is_terminal("RUNNING") and not is_terminal("SUBMITTED") and not is_terminal(None)


def test_submit_token_is_stable_valid_and_moves_on_after_a_failed_job() -> None:
    args = {"config": {"x": 1}, "until": "2026-11-01"}
    token = submit_token("dag", "manual__2026-11-01T00:00:00+00:00", "federated_stats", args, 1)
    assert token == submit_token("dag", "manual__2026-11-01T00:00:00+00:00", "federated_stats", args, 1)
    assert re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", token)
    assert token != submit_token("dag", "manual__2026-11-01T00:00:00+00:00", "federated_stats", args, 2)
    assert token != submit_token("dag", "manual__2026-11-02T00:00:00+00:00", "federated_stats", args, 1)
    assert token != submit_token("dag", "manual__2026-11-01T00:00:00+00:00", "federated_stats", {**args, "x": 2}, 1)


def test_a_missing_startup_kit_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere")):
        open_session(str(tmp_path / "nowhere"), "admin@nvidia.com")


def test_an_unreachable_server_fails_after_bounded_retries_naming_its_address(stack, tmp_path: Path) -> None:
    kit = tmp_path / "admin"
    shutil.copytree(stack.poc().admin_kit, kit)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    config_file = kit / "startup" / "fed_admin.json"
    config = json.loads(config_file.read_text())
    config["admin"]["port"] = closed_port
    config["admin"]["host"] = "127.0.0.1"
    config_file.write_text(json.dumps(config))
    with pytest.raises(NVFlareUnavailable, match=f"127.0.0.1:{closed_port}.*2 attempts"):
        open_session(str(kit), "admin@nvidia.com", login_timeout_s=1, attempts=2, backoff_s=0.1)


def test_trigger_reports_a_broken_connection_as_an_event(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    conn = {"conn_type": "nvflare", "extra": {"startup_kit": str(tmp_path / "none"), "username": "a@b"}}
    monkeypatch.setenv("AIRFLOW_CONN_BROKEN_NVFLARE", json.dumps(conn))
    trigger = NVFlareJobTrigger(job_id="j-1", nvflare_conn_id="broken_nvflare", poll_interval_s=0.1,
                                timeout_s=5, started_at=0.0)

    async def first_event() -> dict:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    payload = asyncio.run(first_event())
    assert payload["status"] == "TRIGGER_ERROR" and "FileNotFoundError" in payload["error"]


def test_gate_waits_for_the_configured_sites_and_names_the_missing(stack) -> None:
    session = open_session(str(stack.poc().admin_kit), "admin@nvidia.com")
    try:
        hospitals = stack.sites()
        assert wait_for_sites(session, hospitals, timeout_s=30) == hospitals
        with pytest.raises(SitesMissing, match="boston") as missing:
            wait_for_sites(session, [*hospitals, "boston"], timeout_s=1, poll_s=0.5)
        assert missing.value.missing == ["boston"]
        assert wait_for_sites(session, [*hospitals, "boston"], timeout_s=1, min_sites=4, poll_s=0.5) == hospitals
    finally:
        session.close()


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
