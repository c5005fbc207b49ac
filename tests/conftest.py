"""Fixtures shared by the suite: the real local stack (PostgreSQL, MLflow, NVFlare POC, Airflow)."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from flareflow.local.stack import Stack, project_dir

NVFLARE_POC_PORT = 8002  # the POC server's port; a developer's own stack would hold it


def _port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """Bring up a private local stack for the session; stop and remove it at the end."""
    if _port_in_use(NVFLARE_POC_PORT):
        pytest.fail(f"port {NVFLARE_POC_PORT} is taken: stop the running local stack ('make down') first")
    # not pytest's tmp_path: the unprivileged postgres user must be able to traverse the folder
    home = Path(tempfile.mkdtemp(prefix="flareflow-test-"))
    os.chmod(home, 0o755)
    test_stack = Stack(home=home, project=project_dir())
    try:
        test_stack.up()
        yield test_stack
    finally:
        test_stack.down()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def stack_env(stack: Stack) -> dict[str, str]:
    """Return the environment of a pipeline process on the test stack."""
    return stack.env()
