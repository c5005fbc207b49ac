"""Promotion: the ``champion`` alias, challengers and their reasons, against a real MLflow and warehouse.

An MLflow tracking server (``mlflow server``, its backend store a throwaway database on the test
PostgreSQL server) runs for the module; each test gets its own registered model and a fresh warehouse.
Versions are registered as the pipeline does it: parent run, logged model, calendar version, then
:func:`flareflow.registry.mlflow_registry.promote` (the first test logs the real global model; the others only the
logged-model record, all promotion reads).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow import MlflowClient
from postgres_helpers import temporary_database
from psycopg2.extensions import connection as Connection
from sample_results import make_run, stats_result, training_result

from flareflow import pipeline
from flareflow.local.processes import Service, free_port
from flareflow.registry import (
    APPROVED,
    AWAITING,
    CHALLENGER,
    CHAMPION,
    REJECTED,
    TIMED_OUT,
    Promotion,
    RegisteredModel,
    decide,
    final_validation_auc,
    settle,
)
from flareflow.registry import mlflow_registry as registry
from flareflow.registry.requirements import model_pip_requirements
from flareflow.warehouse.loaders import RunInfo, load_training

TOLERANCE = 0.01


@pytest.fixture(scope="module")
def mlflow_server(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Run a real MLflow tracking server for the module; yield its URL with MLflow pointed at it."""
    home = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    with temporary_database(postgres_url) as backend:
        server = Service("mlflow", [str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1",
                                    "--port", str(port), "--backend-store-uri", backend, "--serve-artifacts",
                                    "--artifacts-destination", str(home / "artifacts"), "--workers", "1"],
                         home / "run")
        server.start({**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, cwd=home)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, server)
            previous = mlflow.get_tracking_uri()
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("MLFLOW_TRACKING_URI", url)  # pipeline.discard_run builds its own client
                mlflow.set_tracking_uri(url)  # the fluent API log_global_model uses
                yield url
            mlflow.set_tracking_uri(previous)
        finally:
            server.stop()


def _wait_healthy(url: str, server: Service, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            assert server.pid() is not None, f"MLflow server exited:\n{server.log_tail()}"
        time.sleep(0.5)
    raise AssertionError(f"MLflow server not healthy at {url}:\n{server.log_tail()}")


@pytest.fixture
def client(mlflow_server: str) -> MlflowClient:
    return MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)


@pytest.fixture
def model_name() -> str:
    """Return a registered model name of the test's own (the server is shared by the module)."""
    return f"promotion-{uuid.uuid4().hex[:10]}"


def _training(auc: float) -> dict[str, Any]:
    """Return a training result whose final global validation AUC is ``auc``, with a 5-feature model."""
    result = training_result()
    result["rounds"][-1]["metrics"]["global"]["auc"] = auc
    result["model"] = {"coef": [0.1, -0.2, 0.3, 0.05, -0.1], "intercept": [0.2]}
    return result


def log_model(client: MlflowClient, model_name: str, run: RunInfo, training: dict[str, Any], *,
              full: bool = False) -> tuple[str, str]:
    """Create the run's parent run and its logged model; return their ids.

    ``full``: log the real global model (signature, example, artifacts) as the pipeline does; else
    only the logged-model record, which is all the registry's promotion reads (and far quicker).
    """
    parent_id = registry.parent_run(client, f"{model_name}-experiment", run)
    if full:
        model_id = registry.log_global_model(client, parent_id, config={"training": {"rounds": 5}},
                                             stats=stats_result(), training=training)
    else:
        experiment_id = client.get_run(parent_id).info.experiment_id
        model_id = client.create_logged_model(experiment_id, name="model", source_run_id=parent_id).model_id
    return parent_id, model_id


def register(conn: Connection, client: MlflowClient, model_name: str, suffix: str, auc: float,
             tolerance: float = TOLERANCE, *, full: bool = False, approval: bool = False,
             ) -> tuple[RunInfo, RegisteredModel, Promotion]:
    """Record a run of March 2026 in the warehouse, log and register its model, promote it.

    A ``suffix`` used before is a re-run of that run: its new version replaces (retires) the earlier one.
    """
    run = make_run(2026, 3, suffix)
    training = _training(auc)
    load_training(conn, run, training)
    parent_id, model_id = log_model(client, model_name, run, training, full=full)
    registered = registry.register_calendar_version(conn, client, run=run, model_name=model_name, model_id=model_id,
                                                    parent_id=parent_id, sites=run.sites)
    registry.retire_replaced(conn, client, model_name=model_name, run_id=run.run_id, kept=registered)
    promotion = registry.promote(conn, client, model_name=model_name, registered=registered,
                                 auc=final_validation_auc(training), tolerance=tolerance, approval=approval)
    return run, registered, promotion


def champion(client: MlflowClient, model_name: str) -> str | None:
    return client.get_registered_model(model_name).aliases.get(CHAMPION)


def recorded(conn: Connection, run: RunInfo) -> tuple[Any, ...]:
    with conn, conn.cursor() as cur:
        cur.execute("SELECT calendar_version, role, promotion_reason, validation_auc, previous_champion,"
                    " decided_at IS NOT NULL FROM model_versions WHERE run_id = %s AND retired_at IS NULL",
                    (run.run_id,))
        return cur.fetchone()


def version_tags(client: MlflowClient, model_name: str, registered: RegisteredModel) -> dict[str, str]:
    tags = client.get_model_version(model_name, registered.mlflow_version).tags
    return {key: tags[key] for key in ("promotion", "promotion_reason", "validation_auc", "previous_champion")}


# --- the decision rule (no I/O) --------------------------------------------------------------------------


@pytest.mark.parametrize(("auc", "role"), [
    (0.90, CHAMPION), (0.85, CHAMPION), (0.845, CHAMPION), (0.84, CHAMPION), (0.8399, CHALLENGER), (0.5, CHALLENGER),
])
def test_decide_against_the_champion_minus_the_tolerance(auc: float, role: str) -> None:
    decided, reason = decide(auc, ("2026.02.1", 0.85), 0.01)
    assert decided == role
    sign = ">=" if role == CHAMPION else "<"
    assert reason == f"validation AUC {auc:.3f} {sign} champion 2026.02.1's 0.850 - tolerance 0.010"


def test_decide_without_a_champion_or_its_auc() -> None:
    assert decide(0.1, None, 0.01) == (CHAMPION, "first version: no champion yet")
    assert decide(0.1, ("2026.02.1", None), 0.01) == (CHAMPION, "champion 2026.02.1 has no validation AUC to "
                                                                  "compare with")
    assert decide(0.849, ("2026.02.1", 0.85), 0.0)[0] == CHALLENGER


def test_final_validation_auc_is_the_final_rounds_global_auc() -> None:
    result = _training(0.8123)
    assert final_validation_auc(result) == 0.8123
    del result["rounds"][-1]["metrics"]["global"]["auc"]
    with pytest.raises(LookupError, match="no global validation AUC"):
        final_validation_auc(result)


# --- against MLflow and the warehouse ---------------------------------------------------------------------


def test_first_version_becomes_champion(warehouse: Connection, client: MlflowClient, model_name: str) -> None:
    run, registered, promotion = register(warehouse, client, model_name, "", 0.85, full=True)
    assert promotion == Promotion(CHAMPION, "first version: no champion yet", 0.85, None)
    assert champion(client, model_name) == registered.mlflow_version
    assert version_tags(client, model_name, registered) == {
        "promotion": CHAMPION, "promotion_reason": "first version: no champion yet", "validation_auc": "0.85",
        "previous_champion": ""}
    assert recorded(warehouse, run) == ("2026.03.1", CHAMPION, "first version: no champion yet", 0.85, None, True)
    assert promotion.as_dict() == {"role": CHAMPION, "promotion_reason": "first version: no champion yet",
                                   "validation_auc": "0.85", "previous_champion": "", "approval": ""}


def test_better_or_within_tolerance_versions_take_the_alias(
    warehouse: Connection, client: MlflowClient, model_name: str,
) -> None:
    register(warehouse, client, model_name, "__a", 0.85)
    within_run, within, promotion = register(warehouse, client, model_name, "__b", 0.845)
    reason = "validation AUC 0.845 >= champion 2026.03.1's 0.850 - tolerance 0.010"
    assert promotion == Promotion(CHAMPION, reason, 0.845, "2026.03.1")
    assert champion(client, model_name) == within.mlflow_version
    assert recorded(warehouse, within_run) == ("2026.03.2", CHAMPION, reason, 0.845, "2026.03.1", True)
    # exactly the champion's AUC minus the tolerance still counts
    _, boundary, promotion = register(warehouse, client, model_name, "__c", 0.835)
    assert (promotion.role, promotion.previous_champion) == (CHAMPION, "2026.03.2")
    _, better, promotion = register(warehouse, client, model_name, "__d", 0.91)
    assert (promotion.role, promotion.previous_champion) == (CHAMPION, "2026.03.3")
    assert champion(client, model_name) == better.mlflow_version
    assert version_tags(client, model_name, better)["validation_auc"] == "0.91"
    assert boundary.mlflow_version != better.mlflow_version


def test_worse_version_stays_challenger_with_the_reason_in_tags_and_warehouse(
    warehouse: Connection, client: MlflowClient, model_name: str,
) -> None:
    _, best, _ = register(warehouse, client, model_name, "__a", 0.85)
    run, worse, promotion = register(warehouse, client, model_name, "__b", 0.812)
    reason = "validation AUC 0.812 < champion 2026.03.1's 0.850 - tolerance 0.010"
    assert promotion == Promotion(CHALLENGER, reason, 0.812, "2026.03.1")
    assert champion(client, model_name) == best.mlflow_version
    assert version_tags(client, model_name, worse) == {
        "promotion": CHALLENGER, "promotion_reason": reason, "validation_auc": "0.812",
        "previous_champion": "2026.03.1"}
    assert recorded(warehouse, run) == ("2026.03.2", CHALLENGER, reason, 0.812, "2026.03.1", True)
    # a wider tolerance would have let it through
    _, _, lenient = register(warehouse, client, model_name, "__c", 0.812, tolerance=0.05)
    assert lenient.role == CHAMPION


def test_an_identical_rerun_keeps_its_version_and_role(
    warehouse: Connection, client: MlflowClient, model_name: str,
) -> None:
    register(warehouse, client, model_name, "__a", 0.85)
    run, challenger, first = register(warehouse, client, model_name, "__b", 0.80)
    _, newer, _ = register(warehouse, client, model_name, "__c", 0.95)
    before = recorded(warehouse, run)
    # the re-run finds its version, and promotion returns the decision taken then, not a new one
    digest_less = registry.registered_version(warehouse, client, model_name, run.run_id, "")
    assert digest_less == challenger
    again = registry.promote(warehouse, client, model_name=model_name, registered=challenger, auc=0.80,
                             tolerance=0.5)  # a tolerance that would now promote it: the decision stands
    assert again == first and again.role == CHALLENGER
    assert recorded(warehouse, run) == before
    assert champion(client, model_name) == newer.mlflow_version


def test_a_decision_is_completed_after_a_failure_before_its_last_tag(
    warehouse: Connection, client: MlflowClient, model_name: str,
) -> None:
    run, registered, _ = register(warehouse, client, model_name, "", 0.85)
    client.delete_model_version_tag(model_name, registered.mlflow_version, "promotion")  # the marker never landed
    again = registry.promote(warehouse, client, model_name=model_name, registered=registered, auc=0.85,
                             tolerance=TOLERANCE)
    assert again == Promotion(CHAMPION, "first version: no champion yet", 0.85, None)
    assert version_tags(client, model_name, registered)["promotion"] == CHAMPION
    assert recorded(warehouse, run)[1] == CHAMPION


def test_discarding_the_champions_run_restores_the_previous_champion(
    warehouse: Connection, client: MlflowClient, model_name: str,
) -> None:
    validated = {"jobs": {"train": {"mlflow": {"registered_model": model_name}}}}
    first_run, first, _ = register(warehouse, client, model_name, "__a", 0.85)
    middle_run, middle, _ = register(warehouse, client, model_name, "__b", 0.86)
    _, challenger, promotion = register(warehouse, client, model_name, "__c", 0.70)
    failed_run, failed, _ = register(warehouse, client, model_name, "__d", 0.90)
    assert promotion.role == CHALLENGER and champion(client, model_name) == failed.mlflow_version
    # a discarded run that was no champion leaves the alias alone
    pipeline.discard_run(warehouse, validated, middle_run.run_id)
    assert champion(client, model_name) == failed.mlflow_version
    # the champion's run fails: its version goes, the alias goes back past the discarded middle one
    # (and never to the challenger, though registered later)
    pipeline.discard_run(warehouse, validated, failed_run.run_id)
    live = {v.version for v in client.search_model_versions(f"name = '{model_name}'")}
    assert live == {first.mlflow_version, challenger.mlflow_version}
    assert champion(client, model_name) == first.mlflow_version
    assert recorded(warehouse, failed_run) is None
    # the next version is compared with the restored champion
    _, _, after = register(warehouse, client, model_name, "__e", 0.80)
    assert (after.role, after.previous_champion) == (CHALLENGER, "2026.03.1")
    assert middle.mlflow_version not in live
    # with no earlier champion left, the model is left without one
    pipeline.discard_run(warehouse, validated, first_run.run_id)
    assert champion(client, model_name) is None


def test_concurrent_promotions_compare_with_each_other(
    warehouse: Connection, connect: Any, client: MlflowClient, model_name: str,
) -> None:
    register(warehouse, client, model_name, "__base", 0.80)
    pending = []
    for suffix, auc in (("__x", 0.90), ("__y", 0.85)):
        run = make_run(2026, 3, suffix)
        training = _training(auc)
        load_training(warehouse, run, training)
        parent_id, model_id = log_model(client, model_name, run, training)
        pending.append((registry.register_calendar_version(
            warehouse, client, run=run, model_name=model_name, model_id=model_id, parent_id=parent_id,
            sites=run.sites), auc))
    start = threading.Barrier(len(pending))
    results: dict[str, Promotion | BaseException] = {}

    def promoter(conn: Connection, registered: RegisteredModel, auc: float) -> None:
        start.wait()
        try:
            results[registered.calendar_version] = registry.promote(
                conn, MlflowClient(), model_name=model_name, registered=registered, auc=auc, tolerance=TOLERANCE)
        except BaseException as error:  # reported below, not lost in the thread
            results[registered.calendar_version] = error

    threads = [threading.Thread(target=promoter, args=(connect(), registered, auc)) for registered, auc in pending]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(isinstance(result, Promotion) for result in results.values()), results
    x, y = results["2026.03.2"], results["2026.03.3"]
    assert isinstance(x, Promotion) and isinstance(y, Promotion)
    # serialized: whichever decided second compared with the first's outcome, never both with the base
    assert sorted([x.previous_champion, y.previous_champion]) != ["2026.03.1", "2026.03.1"]
    if x.previous_champion == "2026.03.1":  # x first: y (0.85) is below 0.90 - 0.01
        assert (x.role, y.role, y.previous_champion) == (CHAMPION, CHALLENGER, "2026.03.2")
    else:  # y first and champion, then x beat it
        assert (y.role, x.role, x.previous_champion) == (CHAMPION, CHAMPION, "2026.03.3")
    assert champion(client, model_name) == pending[0][0].mlflow_version


# --- approval before promotion (mlflow.promotion: approval) -----------------------------------------------


def approval_record(conn: Connection, registered: RegisteredModel, model_name: str) -> tuple[Any, ...]:
    with conn, conn.cursor() as cur:
        cur.execute("SELECT role, approval, approval_by, promotion_reason, previous_champion, decided_at IS NOT NULL"
                    " FROM model_versions WHERE registered_model = %s AND mlflow_version = %s",
                    (model_name, registered.mlflow_version))
        return cur.fetchone()


def test_settle_words_the_answer_and_keeps_the_rules_reason() -> None:
    pending = Promotion(CHAMPION, "validation AUC 0.850 >= champion 2026.03.1's 0.840 - tolerance 0.010", 0.85,
                        "2026.03.1", AWAITING)
    approved = settle(pending, approved=True, by="alice", comment=" checked the calibration ")
    assert approved == Promotion(CHAMPION, f"approved by alice (checked the calibration); {pending.reason}", 0.85,
                                 "2026.03.1", APPROVED)
    assert settle(pending, approved=False, by="bob").reason == f"rejected by bob; {pending.reason}"
    timed_out = settle(pending, approved=False, by=None, timeout="30 s")
    assert (timed_out.role, timed_out.approval, timed_out.reason) == (
        CHALLENGER, TIMED_OUT, f"no approval within 30 s; {pending.reason}")


def test_with_approval_a_version_passing_the_rule_waits_and_approval_moves_the_alias(
    warehouse: Connection, client: MlflowClient, model_name: str,
) -> None:
    _, base, _ = register(warehouse, client, model_name, "__a", 0.80)
    _, waiting, promotion = register(warehouse, client, model_name, "__b", 0.85, approval=True)
    assert (promotion.role, promotion.approval, promotion.previous_champion) == (CHAMPION, AWAITING, "2026.03.1")
    # nothing moved yet: the alias stays, the version carries no decision, the warehouse says it waits
    assert champion(client, model_name) == base.mlflow_version
    tags = client.get_model_version(model_name, waiting.mlflow_version).tags
    assert tags["approval"] == AWAITING and "promotion" not in tags
    assert approval_record(warehouse, waiting, model_name) == (None, AWAITING, None, promotion.reason, "2026.03.1",
                                                                False)
    # a retry of the register step finds it still waiting, and asks nothing new
    again = registry.promote(warehouse, client, model_name=model_name, registered=waiting, auc=0.85,
                             tolerance=TOLERANCE, approval=True)
    assert again == promotion
    approved = registry.settle_approval(warehouse, client, model_name=model_name,
                                        mlflow_version=waiting.mlflow_version, approved=True, by="alice")
    assert (approved.role, approved.approval) == (CHAMPION, APPROVED)
    assert approved.reason == f"approved by alice; {promotion.reason}"
    assert champion(client, model_name) == waiting.mlflow_version
    tags = client.get_model_version(model_name, waiting.mlflow_version).tags
    assert (tags["promotion"], tags["approval"], tags["approval_by"], tags["promotion_reason"]) == (
        CHAMPION, APPROVED, "alice", approved.reason)
    assert approval_record(warehouse, waiting, model_name) == (CHAMPION, APPROVED, "alice", approved.reason,
                                                                "2026.03.1", True)
    # answering again (a retry of the approval step) changes nothing
    assert registry.settle_approval(warehouse, client, model_name=model_name, mlflow_version=waiting.mlflow_version,
                                    approved=False, by="bob") == approved


def test_a_rejected_or_unanswered_version_stays_a_challenger_with_the_reason(
    warehouse: Connection, client: MlflowClient, model_name: str,
) -> None:
    _, base, _ = register(warehouse, client, model_name, "__a", 0.80)
    _, rejected, _ = register(warehouse, client, model_name, "__b", 0.85, approval=True)
    _, ignored, pending = register(warehouse, client, model_name, "__c", 0.86, approval=True)
    refusal = registry.settle_approval(warehouse, client, model_name=model_name,
                                       mlflow_version=rejected.mlflow_version, approved=False, by="bob",
                                       comment="site shift")
    timeout = registry.settle_approval(warehouse, client, model_name=model_name,
                                       mlflow_version=ignored.mlflow_version, approved=False, by=None,
                                       timeout="30 s")
    assert champion(client, model_name) == base.mlflow_version
    assert approval_record(warehouse, rejected, model_name)[:3] == (CHALLENGER, REJECTED, "bob")
    assert refusal.reason.startswith("rejected by bob (site shift); validation AUC 0.850 >= ")
    assert approval_record(warehouse, ignored, model_name) == (
        CHALLENGER, TIMED_OUT, None, f"no approval within 30 s; {pending.reason}", "2026.03.1", True)
    tags = client.get_model_version(model_name, ignored.mlflow_version).tags
    assert (tags["promotion"], tags["approval"], tags["promotion_reason"]) == (CHALLENGER, TIMED_OUT, timeout.reason)
    assert "approval_by" not in tags


def test_with_approval_a_version_failing_the_rule_is_a_challenger_at_once(
    warehouse: Connection, client: MlflowClient, model_name: str,
) -> None:
    register(warehouse, client, model_name, "__a", 0.85)
    _, worse, promotion = register(warehouse, client, model_name, "__b", 0.70, approval=True)
    assert (promotion.role, promotion.approval) == (CHALLENGER, None)
    assert client.get_model_version(model_name, worse.mlflow_version).tags["promotion"] == CHALLENGER
    # an answer cannot overturn a decision already taken
    assert registry.settle_approval(warehouse, client, model_name=model_name, mlflow_version=worse.mlflow_version,
                                    approved=True, by="alice") == promotion
    assert champion(client, model_name) != worse.mlflow_version


# --- a re-run that trains a different model retires the version it replaces -------------------------------


def test_a_rerun_with_a_different_model_retires_the_version_it_replaces(
    warehouse: Connection, client: MlflowClient, model_name: str,
) -> None:
    _, first, _ = register(warehouse, client, model_name, "__a", 0.85)
    run, replaced, promotion = register(warehouse, client, model_name, "__b", 0.86)
    assert promotion.role == CHAMPION and champion(client, model_name) == replaced.mlflow_version
    # the same Airflow run again (cleared, or reprocessed by a backfill), now training another model
    rerun, replacement, decision = register(warehouse, client, model_name, "__b", 0.84)
    assert rerun.run_id == run.run_id and replacement.calendar_version == "2026.03.3"
    tags = client.get_model_version(model_name, replaced.mlflow_version).tags
    assert tags["replaced_by"] == "2026.03.3"
    assert tags["retired"] == f"replaced by 2026.03.3: a re-run of {run.run_id} trained a different model"
    live = [v.version for v in client.search_model_versions(f"name = '{model_name}' and tags.airflow_run_id = "
                                                            f"'{run.run_id}'") if "retired" not in v.tags]
    assert live == [replacement.mlflow_version]
    # the retired version gave the alias back before the replacement was compared: with the first champion
    assert (decision.role, decision.previous_champion) == (CHAMPION, "2026.03.1")
    assert champion(client, model_name) == replacement.mlflow_version
    with warehouse, warehouse.cursor() as cur:
        cur.execute("SELECT calendar_version, retired_at IS NOT NULL, replaced_by, retired_reason FROM model_versions"
                    " WHERE run_id = %s ORDER BY n", (run.run_id,))
        rows = cur.fetchall()
    assert rows == [("2026.03.2", True, "2026.03.3", tags["retired"]), ("2026.03.3", False, None, None)]
    assert recorded(warehouse, run)[0] == "2026.03.3"  # the run's live version
    # nothing left to retire: doing it again (a retry) changes nothing
    assert registry.retire_replaced(warehouse, client, model_name=model_name, run_id=run.run_id,
                                    kept=replacement) == []
    assert first.mlflow_version != replaced.mlflow_version


def test_the_global_model_is_logged_with_its_pinned_requirements_and_every_rounds_metrics(
    client: MlflowClient, model_name: str,
) -> None:
    run = make_run(2026, 3, "__requirements")
    training = _training(0.85)
    parent_id, model_id = log_model(client, model_name, run, training, full=True)
    folder = Path(mlflow.artifacts.download_artifacts(f"models:/{model_id}"))
    requirements = (folder / "requirements.txt").read_text().split()
    assert requirements == [f"mlflow=={mlflow.__version__}", *model_pip_requirements()]  # none inferred
    # the metrics went in one batch: every round's validation metrics at its step, the test metrics
    history = client.get_metric_history(parent_id, "validation_auc")
    assert [(m.step, m.value) for m in history] == [
        (entry["round"], entry["metrics"]["global"]["auc"]) for entry in training["rounds"]]
    assert client.get_run(parent_id).data.metrics["test_auc"] == training["test"]["global"]["auc"]
    assert client.get_run(parent_id).data.params["training.rounds"] == "5"
