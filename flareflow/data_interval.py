"""The data interval a run covers: the one rule the DAG's Python steps and NVFlareJobOperator share.

In this order:

1. the run's ``data_month`` param (``YYYY-MM``): that calendar month, in the schedule's timezone;
2. the run's own data interval: scheduled and backfilled runs, and manual runs given a logical date
   (the UI's trigger form fills one in), cover the schedule's period before it;
3. none (a manual run without a logical date: the REST API's ``"logical_date": null``,
   ``airflow dags trigger`` without ``--logical-date``, the UI's form with the date cleared): the last
   complete calendar month before the run was triggered (``dag_run.run_after``), in the schedule's
   timezone.

Airflow puts ``data_interval_start`` and ``data_interval_end`` into the task context only when the
run has a logical date; read them through :func:`run_interval`, never directly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

#: the DAG param naming the data month a run covers
DATA_MONTH_PARAM = "data_month"
_MONTH = re.compile(r"(\d{4})-(\d{2})", re.ASCII)


@dataclass(frozen=True)
class DataInterval:
    """The records a run uses are those dated before ``end``; ``start`` names its data month.

    :param start: the interval's start (inclusive)
    :param end: the interval's end (exclusive)
    :param source: which rule gave it: ``data_month``, ``run`` or ``run_after``
    """

    start: datetime
    end: datetime
    source: str

    @property
    def month(self) -> str:
        """Return the data month, ``YYYY-MM`` of the start."""
        return f"{self.start:%Y-%m}"


def parse_month(text: str) -> tuple[int, int]:
    """Return (year, month) of a ``YYYY-MM`` text.

    :raises ValueError: when it is not a month such as ``2026-03``
    """
    match = _MONTH.fullmatch(text) if isinstance(text, str) else None
    if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1:
        raise ValueError(f"not a month YYYY-MM such as 2026-03: {text!r}")
    return int(match.group(1)), int(match.group(2))


def month_interval(month: str, timezone: str) -> DataInterval:
    """Return the calendar month ``YYYY-MM`` as an interval in ``timezone``.

    :param month: the month
    :param timezone: an IANA timezone, the schedule's
    """
    year, number = parse_month(month)
    zone = ZoneInfo(timezone)
    following = (year, number + 1) if number < 12 else (year + 1, 1)
    return DataInterval(datetime(year, number, 1, tzinfo=zone), datetime(*following, 1, tzinfo=zone), "data_month")


def last_complete_month(before: datetime, timezone: str) -> DataInterval:
    """Return the last calendar month that ended at or before ``before``, in ``timezone``.

    :param before: an aware date-time (a run's ``run_after``)
    :param timezone: an IANA timezone, the schedule's
    """
    local = before.astimezone(ZoneInfo(timezone))
    year, number = (local.year, local.month - 1) if local.month > 1 else (local.year - 1, 12)
    interval = month_interval(f"{year:04d}-{number:02d}", timezone)
    return DataInterval(interval.start, interval.end, "run_after")


def run_interval(context: Mapping[str, Any], timezone: str) -> DataInterval:
    """Return the data interval a run covers (see the module's rule).

    :param context: the task's context (``params``, ``data_interval_start``/``_end`` when the run has a
        logical date, ``dag_run``)
    :param timezone: the schedule's timezone (``schedule.timezone`` of the config)
    """
    month = (context.get("params") or {}).get(DATA_MONTH_PARAM)
    if month:
        return month_interval(str(month), timezone)
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is not None and end is not None and start < end:
        return DataInterval(start, end, "run")
    dag_run = context.get("dag_run")
    run_after = getattr(dag_run, "run_after", None)
    if run_after is None:
        raise LookupError("the run has no data interval, no data_month param and no run_after to derive one from")
    return last_complete_month(run_after, timezone)


def schedule_timezone(validated: Mapping[str, Any]) -> str:
    """Return the schedule's timezone from the validated configs (the ``validate_config`` XCom)."""
    return str(next(iter(validated["jobs"].values()))["schedule"]["timezone"])
