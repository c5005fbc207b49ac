"""The one rule for a run's data interval: the data_month param, else the run's interval, else the month before."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pendulum
import pytest

from flareflow.data_interval import last_complete_month, month_interval, parse_month, run_interval
from flareflow.operators.nvflare import NVFlareJobOperator

BERLIN = ZoneInfo("Europe/Berlin")


def null_logical_date_context(run_after: datetime, **params: object) -> dict[str, object]:
    """Return what a task of a run without a logical date gets: no data_interval_* keys at all."""
    return {"params": {"rounds": None, "config_overrides": {}, "data_month": None, **params},
            "dag_run": SimpleNamespace(run_after=run_after, logical_date=None, data_interval_start=None,
                                       data_interval_end=None)}


def test_a_run_without_a_logical_date_covers_the_last_complete_month_before_it_was_triggered() -> None:
    interval = run_interval(null_logical_date_context(datetime(2026, 12, 1, 15, 36, tzinfo=UTC)), "UTC")
    assert (interval.start, interval.end, interval.source) == (
        datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC), "run_after")
    assert interval.month == "2026-11"
    # January: the month before is last year's December
    january = run_interval(null_logical_date_context(datetime(2027, 1, 31, 23, 0, tzinfo=UTC)), "UTC")
    assert (january.start, january.end) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def test_the_month_is_the_schedules_timezone_month() -> None:
    # 23:30 UTC on 30 November is already 1 December in Berlin: November is complete there
    triggered = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
    assert last_complete_month(triggered, "UTC").month == "2026-10"
    berlin = last_complete_month(triggered, "Europe/Berlin")
    assert (berlin.start, berlin.end) == (datetime(2026, 11, 1, tzinfo=BERLIN), datetime(2026, 12, 1, tzinfo=BERLIN))


def test_a_run_with_a_data_interval_keeps_it() -> None:
    start, end = pendulum.datetime(2026, 5, 1, 3, tz="UTC"), pendulum.datetime(2026, 6, 1, 3, tz="UTC")
    context = {**null_logical_date_context(end), "data_interval_start": start, "data_interval_end": end}
    interval = run_interval(context, "UTC")
    assert (interval.start, interval.end, interval.source) == (start, end, "run")


def test_the_data_month_param_wins_over_any_interval() -> None:
    start, end = pendulum.datetime(2026, 11, 1, 3, tz="UTC"), pendulum.datetime(2026, 12, 1, 3, tz="UTC")
    context = {**null_logical_date_context(end, data_month="2026-03"), "data_interval_start": start,
               "data_interval_end": end}
    interval = run_interval(context, "UTC")
    assert (interval.start, interval.end, interval.source) == (
        datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC), "data_month")
    assert month_interval("2026-12", "UTC").end == datetime(2027, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "2026-3", "26-03", "2026/03", "", "2026-03-01"])
def test_a_malformed_month_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        parse_month(text)


def test_a_context_without_interval_or_run_after_says_so() -> None:
    with pytest.raises(LookupError, match="run_after"):
        run_interval({"params": {}}, "UTC")


def test_the_operator_bounds_a_null_logical_date_runs_records_by_the_month_end() -> None:
    # what failed with KeyError: 'data_interval_end' before: the NVFlare step of a run with no logical date
    validated = {"fingerprint": "f", "jobs": {"stats": {"schedule": {"timezone": "UTC"}, "federation": {}}}}
    ti = SimpleNamespace(xcom_pull=lambda task_ids: {"validate_config": validated}.get(task_ids))
    context = {**null_logical_date_context(datetime(2026, 12, 1, 15, 36, tzinfo=UTC)), "ti": ti}
    operator = NVFlareJobOperator(task_id="federated_stats", job="fl_tasks.stats.job", config_job="stats")
    args = operator._build_args(context)
    assert args["until"] == "2026-12-01"
    assert args["config"] is validated["jobs"]["stats"]
