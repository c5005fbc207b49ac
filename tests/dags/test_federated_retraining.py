"""The DAG's shape: nine steps in order, a monthly data interval, a validated trigger form, its assets."""

from __future__ import annotations

import importlib.util
import itertools
from datetime import UTC, datetime

import pytest
from airflow.sdk import CronDataIntervalTimetable
from airflow.sdk.definitions.param import ParamValidationError

from flareflow.local.stack import project_dir

STEPS = ["validate_config", "check_data", "federated_stats", "load_stats", "federated_training", "federated_shap",
         "register_model", "approve_promotion", "refresh_dashboard"]


@pytest.fixture(scope="module")
def dag():
    spec = importlib.util.spec_from_file_location("federated_retraining",
                                                  project_dir() / "dags" / "federated_retraining.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def test_the_steps_run_in_order(dag) -> None:
    assert set(dag.task_dict) == {*STEPS, "discard_failed_run"}
    for before, after in itertools.pairwise(STEPS):
        assert before in dag.task_dict[after].upstream_task_ids or any(
            before in dag.task_dict[t].upstream_task_ids for t in dag.task_dict[after].upstream_task_ids
        ), f"{before} must run before {after}"
    assert dag.task_dict["discard_failed_run"].trigger_rule == "one_failed"
    assert set(dag.task_dict["discard_failed_run"].upstream_task_ids) == set(STEPS)


def test_the_data_check_runs_before_any_statistics_and_feeds_the_warehouse(dag) -> None:
    check = dag.task_dict["check_data"]
    assert (check.job, check.config_job) == ("fl_tasks.check.job", "stats")
    assert check.upstream_task_ids == {"validate_config"}
    assert dag.task_dict["federated_stats"].upstream_task_ids == {"check_data"}
    assert "check_data" in dag.task_dict["load_stats"].upstream_task_ids
    assert "``check_data``" in dag.doc_md


def test_a_run_covers_the_previous_calendar_month(dag) -> None:
    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert dag.catchup is False
    from airflow.serialization.encoders import coerce_to_core_timetable

    interval = coerce_to_core_timetable(dag.timetable).infer_manual_data_interval(
        run_after=datetime(2026, 11, 15, tzinfo=UTC))
    assert (interval.start.month, interval.end.month) == (10, 11)
    assert interval.start.day == interval.end.day == 1


def test_the_trigger_form_validates_its_params(dag) -> None:
    rounds, overrides = dag.params.get_param("rounds"), dag.params.get_param("config_overrides")
    assert rounds.resolve(None) is None and rounds.resolve(5) == 5
    assert overrides.resolve({"training": {"seed": 1}}) == {"training": {"seed": 1}}
    for bad_rounds in (0, "five", 1001):
        with pytest.raises(ParamValidationError):
            rounds.resolve(bad_rounds)
    with pytest.raises(ParamValidationError):
        overrides.resolve(["not", "a", "mapping"])
    month = dag.params.get_param("data_month")
    assert month.resolve(None) is None and month.resolve("2026-03") == "2026-03"
    for bad_month in ("2026-13", "2026-3", "March", "2026-03-01"):
        with pytest.raises(ParamValidationError):
            month.resolve(bad_month)


def test_the_approval_step_is_human_in_the_loop_and_the_dashboard_runs_after_its_skip(dag) -> None:
    from airflow.providers.standard.operators.hitl import HITLOperator

    gate = dag.task_dict["approve_promotion"]
    assert isinstance(gate, HITLOperator)
    assert (gate.options, gate.defaults, gate.multiple) == (["Approve", "Reject"], ["Reject"], False)
    assert set(gate.params) == {"comment"}  # the DAG's params are no question for the approver
    assert dag.task_dict["refresh_dashboard"].trigger_rule == "none_failed"


def test_the_outputs_are_assets_emitted_when_the_run_publishes(dag) -> None:
    from flareflow import assets

    assert dag.task_dict["refresh_dashboard"].outlets == [assets.STATISTICS, assets.MODEL, assets.DASHBOARD]
    assert {a.name for a in assets.OUTPUTS} == {"flareflow.statistics", "flareflow.model", "flareflow.dashboard"}


def test_the_dashboard_plugin_comes_with_the_provider() -> None:
    from airflow import plugins_manager

    apps = plugins_manager.get_fastapi_plugins()[0]
    assert [app["url_prefix"] for app in apps if app["name"] == "flareflow dashboard"] == ["/flareflow"]
