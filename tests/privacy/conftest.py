"""The privacy tests reuse the session's real stats jobs (``tests/stats/stats_jobs.py``) and the benchmarks'
job runner (``benchmarks/_federation.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the project, for ``benchmarks``
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "stats"))

from stats_jobs import StatsRun, run_scenario

from flareflow.local.stack import Stack


@pytest.fixture(scope="session")
def production_run(stack: Stack) -> StatsRun:
    """The stats job as the monthly DAG runs it (shared with ``tests/stats``)."""
    return run_scenario(stack, "production")
