"""Real federated statistics jobs, one per scenario, on the session's test stack (see ``stats_jobs``)."""

from __future__ import annotations

import pytest
from stats_jobs import StatsRun, run_scenario

from flareflow.local.stack import Stack


@pytest.fixture(scope="session")
def exact_run(stack: Stack) -> StatsRun:
    return run_scenario(stack, "exact")


@pytest.fixture(scope="session")
def production_run(stack: Stack) -> StatsRun:
    return run_scenario(stack, "production")


@pytest.fixture(scope="session")
def noisy_ranges_run(stack: Stack) -> StatsRun:
    return run_scenario(stack, "noisy_ranges")


@pytest.fixture(scope="session")
def one_month_run(stack: Stack) -> StatsRun:
    return run_scenario(stack, "one_month")
