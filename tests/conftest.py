"""Fixtures shared by the suite: the real local stack (PostgreSQL, MLflow, NVFlare POC, Airflow)."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from flareflow.local.stack import NVFLARE_PORT_ENV, Stack, project_dir


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """Bring up a private local stack for the session; stop and remove it at the end.

    Its NVFlare server listens on a free port, so a developer's own stack (port 8002) may keep running.
    """
    # not pytest's tmp_path: the unprivileged postgres user must be able to traverse the folder
    home = Path(tempfile.mkdtemp(prefix="flareflow-test-"))
    os.chmod(home, 0o755)
    test_stack = Stack(home=home, project=project_dir())
    os.environ[NVFLARE_PORT_ENV] = str(_free_port())
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
