"""Approval before promotion, answered through the REST API while the session's backfill ran.

The backfill asked for approval (``mlflow.promotion: approval`` in its ``dag_run_conf``, a 30 s
response timeout, a tolerance every version passes): March's model was approved by the ``operator``
user, April's was left unanswered. The monthly run promoted automatically (its approval step skipped).
"""

from __future__ import annotations

import pytest
from approver import COMMENT
from mlflow import MlflowClient
from real_services import SMALL_JOBS, AirflowServices, CeleryRuns

from flareflow.local.stack import Stack

pytestmark = pytest.mark.services

MODEL = SMALL_JOBS["mlflow"]["registered_model"]


def test_the_model_waited_in_awaiting_input_with_no_worker_slot_and_no_trigger(celery_runs: CeleryRuns) -> None:
    march, april = celery_runs.backfilled
    assert set(celery_runs.approvals_seen) == {march, april}  # the automatic monthly run asked nothing
    for run_id in (march, april):
        waiting = celery_runs.approvals_seen[run_id]
        assert (waiting.state, waiting.trigger_id) == ("awaiting_input", None)
        assert (waiting.options, waiting.params) == (["Approve", "Reject"], ["comment"])
        assert waiting.subject.startswith(f"Promote {MODEL} 2026.0") and waiting.subject.endswith("to champion?")
    assert set(celery_runs.approvals_answered) == {march}
    assert celery_runs.approvals_answered[march]["chosen_options"] == ["Approve"]


def version_row(services: AirflowServices, run_id: str) -> tuple[str, str, str, str | None, str]:
    ((row),) = services.warehouse("SELECT mlflow_version, role, approval, approval_by, promotion_reason"
                                  " FROM model_versions WHERE run_id = %s AND retired_at IS NULL", run_id)
    return row


def test_approval_made_it_champion_and_the_timeout_kept_a_challenger(
    airflow_services: AirflowServices, celery_runs: CeleryRuns, stack: Stack,
) -> None:
    services, (march, april) = airflow_services, celery_runs.backfilled
    client = MlflowClient(tracking_uri=stack.service_env()["MLFLOW_TRACKING_URI"])
    approved, timed_out = version_row(services, march), version_row(services, april)
    assert approved[1:4] == ("champion", "approved", "operator")
    # the answer, then the champion rule's reason (the first version, or its AUC against the champion's)
    rule = ("first version: no champion yet", "validation AUC ")
    assert approved[4].startswith(tuple(f"approved by operator ({COMMENT}); {reason}" for reason in rule))
    assert timed_out[1:4] == ("challenger", "timed_out", None)
    assert timed_out[4].startswith(tuple(f"no approval within 30 s; {reason}" for reason in rule))
    for (version, role, approval, _, reason) in (approved, timed_out):
        tags = client.get_model_version(MODEL, version).tags
        assert (tags["promotion"], tags["approval"], tags["promotion_reason"]) == (role, approval, reason)
    assert client.get_model_version(MODEL, approved[0]).tags["approval_by"] == "operator"
    # the timeout answered on nobody's behalf with the default, Reject
    ((detail,),) = [services.hitl_details(april, task_id="approve_promotion")]
    assert (detail["chosen_options"], detail["responded_by_user"]) == (["Reject"], None)
    # the monthly run promoted automatically
    monthly = version_row(services, celery_runs.monthly)
    assert monthly[1] in ("champion", "challenger") and monthly[2] is None
