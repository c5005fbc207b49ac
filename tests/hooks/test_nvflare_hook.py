"""The NVFlare hook: logging in, the site gate, ``test_connection``, and the job lifecycle's checks.

Tests that need the session's test federation (``stack``) are marked ``federation``; the others run
against a missing kit, a closed port or a small stand-in for a Flare API session.
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest

import fl_tasks.train.job as train_job
from fl_tasks.jobs import FAILURE_FILE
from flareflow.hooks.nvflare import (
    COMPLETED,
    NVFlareHook,
    NVFlareJobError,
    NVFlareJobTimeout,
    NVFlareUnavailable,
    SitesMissing,
    close_shared_sessions,
    connected_sites,
    failure_reason,
    fetch_result,
    find_job,
    is_failed,
    is_terminal,
    open_session,
    wait_for_jobs,
    wait_for_sites,
)
from flareflow.local.poc import ADMIN_USER
from flareflow.local.stack import Stack


def connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, extra: dict[str, Any]) -> NVFlareHook:
    """Define an ``nvflare`` connection as the UI's form saves it (fields in the extra); return its hook."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "nvflare", "extra": extra}))
    return NVFlareHook(conn_id, login_timeout_s=2, attempts=1)


# -- logging in --------------------------------------------------------------------------------------
def test_a_missing_startup_kit_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere")):
        open_session(str(tmp_path / "nowhere"), "admin@nvidia.com")


@pytest.mark.federation
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


# -- test_connection (the UI's "Test" button) ------------------------------------------------------
def test_test_connection_names_a_missing_kit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    hook = connection(monkeypatch, "nvflare_nowhere", {"startup_kit": str(tmp_path / "none"), "username": "a@b.org"})
    ok, message = hook.test_connection()
    assert not ok
    assert message == f"FileNotFoundError: no NVFlare admin startup kit at {tmp_path / 'none'} " \
                      f"(expected {tmp_path / 'none' / 'startup'})"


def test_test_connection_names_every_empty_form_field(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = connection(monkeypatch, "nvflare_empty", {"startup_kit": "", "username": None})
    assert hook.test_connection() == (
        False, "ValueError: Airflow connection 'nvflare_empty' lacks extra field(s) 'startup_kit', 'username'")


@pytest.mark.federation
def test_test_connection_logs_in_and_lists_the_connected_sites(
    stack: Stack, monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook = connection(monkeypatch, "nvflare_test_stack", {"startup_kit": str(stack.poc().admin_kit),
                                                          "username": ADMIN_USER})
    assert hook.test_connection() == (True, f"connected sites: {', '.join(sorted(stack.sites()))}")


@pytest.mark.federation
def test_a_shared_session_logs_in_once_and_is_replaced_once_it_no_longer_answers(
    stack: Stack, monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook = connection(monkeypatch, "nvflare_shared", {"startup_kit": str(stack.poc().admin_kit),
                                                     "username": ADMIN_USER})
    try:
        with hook.shared_session() as first:
            sites = connected_sites(first)
        with hook.shared_session() as again:
            assert again is first  # no second login
            assert connected_sites(again) == sites == sorted(stack.sites())
        first.close()  # broken behind the hook's back (as an expired session would be)
        with hook.shared_session() as renewed:
            assert renewed is not first
            assert connected_sites(renewed) == sites
        with pytest.raises(RuntimeError, match="a failing step"), hook.shared_session():
            raise RuntimeError("a failing step")
        with hook.shared_session() as after_failure:  # a session that saw an error is not kept
            assert after_failure is not renewed
    finally:
        assert close_shared_sessions() >= 1


# -- the site gate -------------------------------------------------------------------------------------
@pytest.mark.federation
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


# -- the job lifecycle (the real federation runs it in tests/failures, tests/stats, tests/e2e …) -------
def test_terminal_statuses() -> None:
    assert is_terminal("FINISHED:COMPLETED") and is_terminal("FINISHED:ABORTED")
    assert not is_terminal("RUNNING") and not is_terminal("SUBMITTED") and not is_terminal(None)
    assert is_failed("FINISHED:ABORTED") and is_failed("FINISHED:EXECUTION_EXCEPTION")
    assert not is_failed(COMPLETED) and not is_failed("RUNNING")


class StandInSession:
    """What the lifecycle functions call on a Flare API session, for jobs that never ran anywhere.

    :param statuses: job id -> status
    :param workspaces: job id -> file name -> content of the job's downloadable server workspace
    """

    def __init__(self, statuses: dict[str, str], workspaces: dict[str, dict[str, Any]] | None = None) -> None:
        self.statuses = statuses
        self.workspaces = workspaces or {}

    def list_jobs(self, submit_token: str | None = None) -> list[dict[str, str]]:
        return [{"job_id": job_id, "status": status, "job_name": "stats"} for job_id, status in self.statuses.items()
                if submit_token in (None, f"token-{job_id}")]

    def get_job_meta(self, job_id: str) -> dict[str, str]:
        return {"status": self.statuses[job_id]}

    def download_job_result(self, job_id: str, destination: str) -> str:
        if job_id not in self.workspaces:
            raise RuntimeError(f"job {job_id} has no workspace")
        folder = Path(destination) / job_id
        for name, content in self.workspaces[job_id].items():
            (folder / "workspace" / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / "workspace" / name).write_text(json.dumps(content))
        return str(folder)


def test_find_job_by_its_submit_token() -> None:
    session = StandInSession({"j-1": COMPLETED, "j-2": "RUNNING"})
    assert find_job(session, "token-j-2") == ("j-2", "RUNNING")
    assert find_job(session, "token-j-3") is None


def test_waiting_names_the_jobs_still_running_at_the_deadline() -> None:
    session = StandInSession({"j-1": COMPLETED, "j-2": "RUNNING"})
    with pytest.raises(NVFlareJobTimeout, match=r"j-2 \(RUNNING\)") as late:
        wait_for_jobs(session, ["j-1", "j-2"], timeout_s=0, poll_s=0)
    assert late.value.statuses == {"j-2": "RUNNING"}
    assert wait_for_jobs(session, ["j-1"], timeout_s=0) == {"j-1": COMPLETED}


def test_failure_reason_comes_from_the_workflows_failure_file(tmp_path: Path) -> None:
    session = StandInSession({"j-1": "FINISHED:EXECUTION_EXCEPTION", "j-2": "FINISHED:ABORTED"},
                             {"j-1": {FAILURE_FILE: {"reason": "site hungary sent no result", "sites": ["hungary"]}}})
    assert failure_reason(session, "j-1", tmp_path) == "site hungary sent no result"
    assert failure_reason(session, "j-2", tmp_path) is None  # never ran: nothing to download


def test_a_result_must_exist_and_name_every_site(tmp_path: Path) -> None:
    result = {"test": {"cleveland": {}, "hungary": {}, "global": {}}}
    session = StandInSession({"j-1": COMPLETED, "j-2": COMPLETED}, {"j-1": {train_job.RESULT_FILE: result}, "j-2": {}})
    found = fetch_result(session, "j-1", tmp_path, train_job, ["cleveland", "hungary"])
    assert found == tmp_path / "j-1" / "workspace" / train_job.RESULT_FILE
    with pytest.raises(NVFlareJobError, match="NVFlare job j-1: result lacks site\\(s\\) switzerland, va-long-beach"):
        fetch_result(session, "j-1", tmp_path, train_job, ["cleveland", "switzerland", "va-long-beach"])
    with pytest.raises(NVFlareJobError, match="NVFlare job j-2 completed without its result"):
        fetch_result(session, "j-2", tmp_path, train_job, ["cleveland"])
