"""NVFlareJobTrigger: it serializes to its constructor's arguments and reports errors as an event."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from flareflow.triggers.nvflare import NVFlareJobTrigger, poll_pauses


def test_trigger_serializes_to_its_constructor_arguments() -> None:
    trigger = NVFlareJobTrigger(job_id="j-1", nvflare_conn_id="nvflare_default", poll_interval_s=2.0,
                                timeout_s=60.0, started_at=1700000000.0)
    path, kwargs = trigger.serialize()
    assert path == "flareflow.triggers.nvflare.NVFlareJobTrigger"
    assert NVFlareJobTrigger(**kwargs).serialize() == (path, kwargs)
    json.dumps(kwargs)  # primitives only


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


def test_the_first_status_checks_come_quickly_then_at_the_configured_interval() -> None:
    pauses = poll_pauses(3)
    assert [next(pauses) for _ in range(6)] == [0.5, 1.0, 2.0, 3, 3, 3]
    pauses = poll_pauses(1)  # never longer than the configured interval
    assert [next(pauses) for _ in range(5)] == [0.5, 1.0, 1, 1, 1]
