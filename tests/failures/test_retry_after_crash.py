"""A task crashes between submitting its NVFlare job and the job's end (issue 3, failure path 3).

Its retry must find the job by its submit token and follow it: one NVFlare job per task, however many
tries. Only after that job failed does a try submit a new one, under the next token.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred
from failure_injection import FAST_FEDERATION, Federation, dag_conf, dag_run_id, training_context, training_operator

from flareflow import pipeline
from flareflow.hooks.nvflare import COMPLETED, abort_job, is_terminal, list_jobs
from flareflow.local.cli import DAG_ID
from flareflow.local.stack import Stack
from flareflow.operators.nvflare import NVFlareJobOperator, submit_token

LOGICAL_DATE = "2026-09-01T03:00:00+00:00"  # data interval: August 2026, a run of its own


def deferred_job(operator: NVFlareJobOperator, context: dict[str, Any]) -> str:
    """Run one try of the operator until it defers; return the NVFlare job it follows."""
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    return str(deferred.value.trigger.job_id)


def test_tries_follow_the_live_job_and_submit_anew_only_after_it_failed(
    stack: Stack, federation: Federation, stats_result: Path, pipeline_env: dict[str, str],
) -> None:
    overrides = {"federation": FAST_FEDERATION, "training": {"rounds": 200}}
    validated = pipeline.validate_config(stack.config_dir, {"config_overrides": overrides})
    run_id = f"failures__{uuid.uuid4().hex}"
    context = training_context(run_id, validated, stats_result)
    before = federation.job_ids()

    first = deferred_job(training_operator(), context)
    # the worker died after the submit; each new try is a new operator object in a new process
    assert deferred_job(training_operator(), context) == first
    assert deferred_job(training_operator(), context) == first
    assert federation.job_ids() - before == {first}
    assert not is_terminal(federation.status(first))

    abort_job(federation.session, first)  # the job fails
    assert federation.wait_until_finished(first, 60) == "FINISHED:ABORTED"
    second = deferred_job(training_operator(), context)
    assert second != first
    assert federation.job_ids() - before == {first, second}
    args = training_operator()._build_args(context)
    for attempt, job_id in ((1, first), (2, second)):
        token = submit_token(DAG_ID, run_id, "federated_training", args, attempt)
        assert list(list_jobs(federation.session, submit_token=token)) == [job_id]
    assert deferred_job(training_operator(), context) == second
    assert federation.job_ids() - before == {first, second}


def test_airflow_retry_after_a_crashed_try_follows_the_job_it_submitted(
    stack: Stack, federation: Federation, airflow,
) -> None:
    # a DAG run whose configs are validated (its XCom), the other tasks marked done without running
    prepared = airflow("dags", "test", DAG_ID, LOGICAL_DATE, "--conf", dag_conf(),
                       "--mark-success-pattern", "(?!validate_config$).*")
    code, output = prepared.wait(timeout_s=300)
    assert code == 0, output[-4000:]
    run_id = dag_run_id(stack, LOGICAL_DATE)
    before = federation.job_ids()

    crashed = airflow("tasks", "test", DAG_ID, "federated_stats", run_id)
    job_id = federation.new_job(before, "federated_stats", timeout_s=180, watch=crashed.process)
    crashed.kill()  # the try dies, and the trigger following its job with it (`tasks test` runs it inline)
    assert not is_terminal(federation.status(job_id))
    # the task is cleared for another try, as after a lost worker or triggerer (no triggerer is left to
    # call on_kill); the try starts over from execute()
    # (Airflow 3 matches -t as a substring of task ids, whatever its help says)
    cleared = airflow("tasks", "clear", DAG_ID, "-t", "federated_stats", "-s", LOGICAL_DATE, "-e", LOGICAL_DATE, "-y")
    code, output = cleared.wait(timeout_s=180)
    assert code == 0, output[-4000:]

    retry = airflow("tasks", "test", DAG_ID, "federated_stats", run_id)
    code, output = retry.wait(timeout_s=300)
    assert code == 0, output[-4000:]
    assert f"following NVFlare job {job_id} submitted by an earlier try" in output, output[-4000:]
    assert f"NVFlare job {job_id} completed with sites" in output, output[-4000:]
    assert federation.job_ids() - before == {job_id}
    assert federation.status(job_id) == COMPLETED
