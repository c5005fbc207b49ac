"""Fixtures of the end-to-end tests: the stack's settings in this process, and the DAG runs of October 2026.

The runs are session-scoped so that every module here reads the same two runs; each module still
gets the stack's environment (MLflow, work folder) only while it runs. The first is ``airflow dags test``
with a logical date; the second is what a user types, ``flareflow run --month 2026-10`` (its progress
display is checked in ``test_progress.py``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pipeline_runs import FIRST_RUN_AT, SECOND_RUN_MONTH, CliRun, run_cli, run_dag

from flareflow.local.stack import Stack


@pytest.fixture(scope="module", autouse=True)
def stack_environment(stack: Stack) -> Iterator[dict[str, str]]:
    """Put the stack's settings (MLflow, connections, work folder) into this process's environment."""
    env = stack.service_env()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        yield env


@pytest.fixture(scope="session")
def runs(stack: Stack) -> list[str]:
    """Run the DAG for October 2026 once; return its run id in a list."""
    return [run_dag(stack, FIRST_RUN_AT)]


@pytest.fixture(scope="session")
def second_run_cli(stack: Stack, runs: list[str]) -> CliRun:
    """Run the DAG for October 2026 a second time, after the first, with ``flareflow run``."""
    return run_cli(stack, SECOND_RUN_MONTH)


@pytest.fixture(scope="session")
def second_run(second_run_cli: CliRun) -> str:
    """Return the second run's id."""
    return second_run_cli.run_id
