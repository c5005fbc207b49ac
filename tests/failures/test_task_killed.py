"""Airflow kills a task whose NVFlare job runs (issue 3, failure path 2): the job must be aborted.

The operator runs in this process against the real federation, with a stand-in for the task instance
(its ids and upstream XComs): ``execute`` exports and submits a real training job, then defers. Marking
the task failed or clearing it while deferred makes the triggerer call the trigger's ``on_kill``; killing
it while it runs in a worker makes the worker call the operator's ``on_kill``. Both must abort the job,
as must the trigger itself when the job outlives ``federation.job_timeout_s``.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from airflow.configuration import conf
from airflow.sdk.exceptions import TaskDeferred
from failure_injection import FAST_FEDERATION, Federation, training_context, training_operator

from flareflow import pipeline
from flareflow.local.stack import Stack
from flareflow.operators.nvflare import NVFlareJobFailed, NVFlareJobOperator
from flareflow.triggers.nvflare import TIMED_OUT, NVFlareJobTrigger

ROUNDS = 200  # the job would train for minutes: only an abort ends it within the test's bounds
ABORT_WITHIN_S = 60


@pytest.fixture
def validated(stack: Stack, pipeline_env: dict[str, str]) -> dict[str, Any]:
    """The validated configs of a run with the fast federation settings and a long training."""
    overrides = {"federation": FAST_FEDERATION, "training": {"rounds": ROUNDS}}
    return pipeline.validate_config(stack.config_dir, {"config_overrides": overrides})


def start_training(federation: Federation, operator: NVFlareJobOperator, context: dict[str, Any]) -> NVFlareJobTrigger:
    """Run the operator until it defers; wait until its job trains; return the trigger it deferred to."""
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    trigger = deferred.value.trigger
    assert isinstance(trigger, NVFlareJobTrigger)
    federation.wait_for_log(trigger.job_id, f"round 1/{ROUNDS}", timeout_s=180)
    return trigger


def test_trigger_on_kill_aborts_the_running_job(
    federation: Federation, validated: dict[str, Any], stats_result: Path,
) -> None:
    context = training_context(f"failures__{uuid.uuid4().hex}", validated, stats_result)
    deferred_to = start_training(federation, training_operator(), context)
    # the triggerer rebuilds the trigger from its serialized form, then calls on_kill on mark-failed/clear
    path, kwargs = deferred_to.serialize()
    assert path == "flareflow.triggers.nvflare.NVFlareJobTrigger"
    trigger = NVFlareJobTrigger(**kwargs)
    assert federation.status(trigger.job_id) == "RUNNING"

    # the triggerer gives on_kill this long before it gives up on it
    asyncio.run(asyncio.wait_for(trigger.on_kill(), timeout=conf.getint("triggerer", "on_kill_timeout", fallback=30)))

    assert federation.wait_until_finished(trigger.job_id, ABORT_WITHIN_S) == "FINISHED:ABORTED"


def test_operator_on_kill_aborts_the_running_job(
    federation: Federation, validated: dict[str, Any], stats_result: Path,
) -> None:
    context = training_context(f"failures__{uuid.uuid4().hex}", validated, stats_result)
    operator = training_operator()
    job_id = start_training(federation, operator, context).job_id
    assert federation.status(job_id) == "RUNNING"

    operator.on_kill()

    assert federation.wait_until_finished(job_id, ABORT_WITHIN_S) == "FINISHED:ABORTED"


def test_a_job_outliving_its_budget_is_aborted_and_fails_the_task(
    stack: Stack, federation: Federation, stats_result: Path, pipeline_env: dict[str, str],
) -> None:
    budget_s = 30  # the job would train for minutes
    overrides = {"federation": {**FAST_FEDERATION, "job_timeout_s": budget_s}, "training": {"rounds": ROUNDS}}
    validated = pipeline.validate_config(stack.config_dir, {"config_overrides": overrides})
    context = training_context(f"failures__{uuid.uuid4().hex}", validated, stats_result)
    operator = training_operator()
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    trigger = deferred.value.trigger

    async def first_event() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("the trigger ended without an event")

    event = asyncio.run(asyncio.wait_for(first_event(), timeout=budget_s + 60))

    assert event["status"] == TIMED_OUT, event
    assert federation.wait_until_finished(trigger.job_id, ABORT_WITHIN_S) == "FINISHED:ABORTED"
    with pytest.raises(NVFlareJobFailed, match=f"NVFlare job {trigger.job_id} ended {TIMED_OUT}"):
        operator.execute_complete(context, event)
