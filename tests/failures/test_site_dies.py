"""A hospital's NVFlare client dies while the training job runs (issue 3, failure path 1).

The monthly DAG runs under ``airflow dags test`` on the real stack with a short per-site timeout; once the
training job is in its second FedAvg round, every process of one hospital is killed. The job must end
in failure within the timeout plus a margin, the failure must name the hospital, the Airflow retry must
not submit another job while the hospital is gone, and ``discard_failed_run`` must leave no trace of the
run. The fixture restarts the hospital afterwards. A hospital that is alive but too busy to answer
must not fail the gate.
"""

from __future__ import annotations

import re
import time

from failure_injection import TASK_TIMEOUT_S, Federation, dag_conf, dag_run_id, warehouse_rows
from mlflow import MlflowClient

from flareflow.hooks.nvflare import wait_for_sites
from flareflow.local.cli import DAG_ID
from flareflow.local.stack import Stack
from flareflow.registry import RUN_TAG

LOGICAL_DATE = "2026-10-01T03:00:00+00:00"  # data interval: September 2026 (the e2e test uses October)
SITE = "hungary"
ROUNDS = 50  # far more than the test lets run: the job is still training when the site dies
#: how long a failed job may take beyond the per-site timeout to end (teardown of server and clients)
MARGIN_S = 60


def test_a_site_dying_mid_training_fails_the_run_naming_the_site_and_leaves_nothing(
    stack: Stack, federation: Federation, airflow, pipeline_env: dict[str, str],
) -> None:
    before = federation.job_ids()
    run = airflow("dags", "test", DAG_ID, LOGICAL_DATE, "--conf", dag_conf(training={"rounds": ROUNDS}))
    check_job = federation.new_job(before, "check_data", timeout_s=240, watch=run.process)
    stats_job = federation.new_job(before, "federated_stats", timeout_s=240, watch=run.process)
    train_job = federation.new_job(before, "federated_training", timeout_s=240, watch=run.process)
    run_id = dag_run_id(stack, LOGICAL_DATE)
    assert warehouse_rows(stack, run_id)["feature_stats"] > 0, "load_stats wrote nothing before training"

    federation.wait_for_log(train_job, f"round 2/{ROUNDS}", timeout_s=180)
    federation.kill_site(SITE)
    killed_at = time.monotonic()
    # the server goes on listing the dead client until its heartbeat timeout (600 s); the gate must not
    federation.wait_until_disconnected(SITE)
    status = federation.wait_until_finished(train_job, timeout_s=TASK_TIMEOUT_S + MARGIN_S)
    print(f"training job {train_job} ended {status} {time.monotonic() - killed_at:.0f}s after {SITE} died")
    assert status in ("FINISHED:EXECUTION_EXCEPTION", "FINISHED:ABORTED")

    code, output = run.wait(timeout_s=300)
    assert code != 0, output[-4000:]
    # the operator names the job, its end and the workflow's reason, which names the dead site
    reason = rf"task 'train': no result from site\(s\) {SITE} within {TASK_TIMEOUT_S}s"
    assert re.search(rf"NVFlareJobFailed\W+NVFlare job {train_job} ended {status}: {reason}", output), output[-6000:]
    # the retry saw the failed job, so it would submit anew, but the gate found the site gone
    assert f"sites not connected to NVFlare after 10s: {SITE}" in output, output[-6000:]
    assert federation.job_ids() - before == {check_job, stats_job, train_job}
    # discard_failed_run removed what load_stats wrote; nothing was registered
    rows = warehouse_rows(stack, run_id)
    assert not any(rows.values()), rows
    assert MlflowClient().search_model_versions(f"tags.{RUN_TAG} = '{run_id}'") == []


def test_a_site_too_busy_to_answer_does_not_break_the_gate(stack: Stack, federation: Federation) -> None:
    # the status query times out while one client does not answer; the gate then goes by the server's list
    with federation.frozen(SITE):
        assert wait_for_sites(federation.session, stack.sites(), timeout_s=1) == stack.sites()
    assert wait_for_sites(federation.session, stack.sites(), timeout_s=30) == stack.sites()
