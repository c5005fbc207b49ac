"""The NVFlare server cannot be reached (issue 3, failure path 5), at the operator's level.

``tests/operators/test_nvflare.py`` covers the login itself (bounded retries, the address in the error)
and the trigger's report of a broken connection. Here the whole task: ``federated_training`` pointed at
an admin kit whose server address has nothing listening fails with the address, before exporting,
submitting or deferring anything.
"""

from __future__ import annotations

import json
import shutil
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest
from failure_injection import FAST_FEDERATION, Federation, training_context, training_operator

from flareflow import pipeline
from flareflow.hooks.nvflare import NVFlareUnavailable
from flareflow.local.poc import ADMIN_USER
from flareflow.local.stack import Stack
from flareflow.operators.nvflare import work_dir


def closed_port() -> int:
    with socket.socket() as probe:  # bound, never listening: connections to it are refused
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_server_fails_the_task_naming_the_address_with_nothing_submitted(
    stack: Stack, federation: Federation, stats_result: Path, pipeline_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    kit = tmp_path / "admin"
    shutil.copytree(stack.poc().admin_kit, kit)
    port = closed_port()
    admin_file = kit / "startup" / "fed_admin.json"
    admin: dict[str, Any] = json.loads(admin_file.read_text())
    admin["admin"].update(host="127.0.0.1", port=port)
    admin_file.write_text(json.dumps(admin))
    monkeypatch.setenv("AIRFLOW_CONN_NVFLARE_UNREACHABLE", json.dumps(
        {"conn_type": "nvflare", "extra": {"startup_kit": str(kit), "username": ADMIN_USER}}))
    overrides = {"federation": {**FAST_FEDERATION, "conn_id": "nvflare_unreachable"}}
    validated = pipeline.validate_config(stack.config_dir, {"config_overrides": overrides})
    context = training_context(f"failures__{uuid.uuid4().hex}", validated, stats_result)
    before = federation.job_ids()

    with pytest.raises(NVFlareUnavailable, match=f"127.0.0.1:{port}.*after 3 attempts"):
        training_operator().execute(context)  # not TaskDeferred: nothing to follow

    assert not work_dir(context).exists(), "a job was exported for a server that cannot be reached"
    assert federation.job_ids() == before
