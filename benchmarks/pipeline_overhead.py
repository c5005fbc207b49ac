"""What the pipeline costs around its NVFlare jobs: one demo month, each step timed, against the goals.

Brings up its own local stack (demo dataset, free NVFlare port, temporary home), runs the DAG for one
data month as ``flareflow run --month`` does (``airflow dags test``: every step in one process, the
triggers run in line), then reads back

- each step's wall time from Airflow's task instance (start to end; a deferred step's start is kept
  across its deferral),
- for each NVFlare step, its job's own wall time from the job meta (submitted to ended) and the
  operator's own work around the job (``operator_s`` in the step's XCom: login, find, gate, export,
  submit, then login, download, judge; importing the job's module is shown apart),
- Airflow's own start-up of each step (from its start to the Execution API's "Task started", in
  Airflow's log of the run, which is kept: its path is in the first line printed),
- the DAG run's wall time.

    .venv/bin/python benchmarks/pipeline_overhead.py [--month 2026-10] [--conf '{"rounds": 5}']

prints a table (one line per step), the machine's load, one verdict per goal, and last
``pipeline_s=… nvflare_jobs_s=… ratio=…`` (ratio: DAG run wall time over the jobs' summed wall times;
the jobs run one after the other). Exits 1 if the run failed. The goals (issue 11): validate_config,
load_stats and refresh_dashboard at most 2 s each, register_model at most 5 s, the operator's own work
at most 3 s per job, ratio at most 1.2.

Measured 2026-12-01 on the shared 2-core machine (load 5.7 before, 15.5 after): pipeline_s=158.4
nvflare_jobs_s=133.8 ratio=1.18; validate_config 2.6 s, of which 2.6 s is ``dags test`` starting its
in-process Execution API (the step's own work 0.07 s); load_stats 0.2 s, register_model 3.1 s,
refresh_dashboard 0.6 s; the operator's own work 0.3-2.2 s per job (before issue 11: 164 s for ~108 s
of jobs, ratio 1.5; validate_config 7-11 s, register_model 16-25 s).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the ``benchmarks`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._airflow import connect_db, query
from benchmarks._federation import job_wall_s, private_stack, stdout_to_stderr
from flareflow.hooks.nvflare import job_meta, open_session
from flareflow.local.cli import DAG_ID, run_month
from flareflow.local.poc import ADMIN_USER
from flareflow.local.progress import last_complete_month
from flareflow.local.stack import Stack

#: the NVFlare steps of the DAG (their XCom names the job)
NVFLARE_STEPS = ("check_data", "federated_stats", "federated_training", "federated_shap")
#: step -> the most seconds it may take
STEP_GOALS_S = {"validate_config": 2.0, "load_stats": 2.0, "register_model": 5.0, "refresh_dashboard": 2.0}
#: the most seconds the operator's own work around one job may take (gate, export, submit, download …)
OPERATOR_GOAL_S = 3.0
#: the operator's parts in the order they happen (``import``: the job's Python module, once per process, is
#: not the operator's work and is left out of its goal)
OPERATOR_PARTS = ("import", "login", "find", "gate", "export", "submit", "login_after", "download", "judge")
#: the most the DAG run may take, as a multiple of its NVFlare jobs' wall time
RATIO_GOAL = 1.2


@dataclass
class StepTimes:
    """One step of the run.

    :param task_id: the Airflow task
    :param state: its final state
    :param task_s: its task instance's wall time (None if it never ran)
    :param job_id: its NVFlare job (NVFlare steps)
    :param job_s: the job's wall time, submitted to ended
    :param operator_s: the operator's own work around the job, per part
    :param started_at: its task instance's start
    :param ti_id: its task instance's id
    :param airflow_start_s: Airflow's own start-up of the task: from its start to the Execution API's
        "Task started" (its code runs after that); under ``dags test`` the first task also starts the
        in-process Execution API
    """

    task_id: str
    state: str
    task_s: float | None
    job_id: str | None = None
    job_s: float | None = None
    operator_s: dict[str, float] = field(default_factory=dict)
    started_at: datetime | None = None
    ti_id: str = ""
    airflow_start_s: float | None = None


def operator_work_s(step: StepTimes) -> float | None:
    """Return the operator's own work around the job: every part but importing the job's module."""
    if not step.operator_s:
        return None
    return sum(seconds for name, seconds in step.operator_s.items() if name != "import")


@dataclass
class RunTimes:
    """The run: its id, state, wall time and steps (in the order they started)."""

    run_id: str
    state: str
    wall_s: float
    steps: list[StepTimes]

    def step(self, task_id: str) -> StepTimes | None:
        return next((step for step in self.steps if step.task_id == task_id), None)

    @property
    def jobs_s(self) -> float:
        return sum(step.job_s or 0.0 for step in self.steps)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end else None


def _json(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        value = value.decode()
    return json.loads(value) if isinstance(value, str) else value


def read_run(stack: Stack, since: datetime) -> RunTimes:
    """Read the newest run of the DAG started after ``since``: Airflow's records, then the job metas."""
    with closing(connect_db(stack.database().url("flareflow_airflow"))) as conn:
        rows = query(conn, "SELECT run_id, state, start_date, end_date FROM dag_run WHERE dag_id = %s "
                           "AND start_date >= %s ORDER BY id DESC LIMIT 1", DAG_ID, since)
        if not rows:
            raise RuntimeError(f"no run of {DAG_ID} started after {since}")
        run_id, state, start, end = rows[0]
        steps = [StepTimes(task_id, str(task_state), _seconds(task_start, task_end), started_at=task_start,
                           ti_id=str(ti_id))
                 for ti_id, task_id, task_state, task_start, task_end in query(
                     conn, "SELECT id, task_id, state, start_date, end_date FROM task_instance WHERE dag_id = %s "
                           "AND run_id = %s ORDER BY start_date NULLS LAST, task_id", DAG_ID, run_id)]
        for step in steps:
            if step.task_id in NVFLARE_STEPS:
                found = query(conn, "SELECT value FROM xcom WHERE dag_id = %s AND run_id = %s AND task_id = %s "
                                    "AND key = 'return_value' AND map_index = -1", DAG_ID, run_id, step.task_id)
                value = _json(found[0][0]) if found else None
                if isinstance(value, Mapping):
                    step.job_id = value.get("job_id")
                    step.operator_s = dict(value.get("operator_s") or {})
    session = open_session(str(stack.poc().admin_kit), ADMIN_USER, attempts=5)
    try:
        for step in steps:
            if step.job_id:
                step.job_s = job_wall_s(job_meta(session, step.job_id))
    finally:
        session.close()
    return RunTimes(str(run_id), str(state), _seconds(start, end) or 0.0, steps)


#: the Execution API's line when a task instance starts running (its code comes next)
_TASK_STARTED = re.compile(r"^(\S+Z) .*\bTask started\b.*\bti_id=([0-9a-f-]+)")


def read_airflow_starts(run: RunTimes, log_file: Path) -> None:
    """Set each step's Airflow start-up from the run's Airflow log (the first "Task started" of its instance)."""
    first: dict[str, datetime] = {}
    for line in log_file.read_text(errors="replace").splitlines():
        found = _TASK_STARTED.match(line)
        if found:
            first.setdefault(found.group(2), datetime.fromisoformat(found.group(1).replace("Z", "+00:00")))
    for step in run.steps:
        if step.ti_id in first and step.started_at:
            step.airflow_start_s = max(0.0, (first[step.ti_id] - step.started_at).total_seconds())


def _figure(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f}"


def table(run: RunTimes) -> list[str]:
    """Return the per-step lines: task wall time, job wall time, the rest, the operator's own work."""
    lines = [f"{'step':<20} {'state':<9} {'task_s':>7} {'start_s':>7} {'job_s':>7} {'around_s':>8} "
             f"{'operator_s':>10}  parts (s)"]
    for step in run.steps:
        around = step.task_s - step.job_s if step.task_s is not None and step.job_s is not None else None
        operator = operator_work_s(step)
        names = [*(name for name in OPERATOR_PARTS if name in step.operator_s),
                 *sorted(set(step.operator_s) - set(OPERATOR_PARTS))]
        parts = " ".join(f"{name}={step.operator_s[name]:.2f}" for name in names)
        lines.append(f"{step.task_id:<20} {step.state:<9} {_figure(step.task_s):>7} "
                     f"{_figure(step.airflow_start_s):>7} {_figure(step.job_s):>7} "
                     f"{_figure(around):>8} {_figure(operator):>10}  {parts}".rstrip())
    return lines


def verdicts(run: RunTimes) -> list[str]:
    """Return one line per goal: the figure, the goal, met or missed."""
    def line(name: str, value: float | None, goal: float, unit: str = "s") -> str:
        met = value is not None and value <= goal
        shown = "not measured" if value is None else f"{value:.2f}{' ' + unit if unit else ''}"
        return f"goal {name:<40} {shown:>10}  <= {goal:g}{' ' + unit if unit else ''}  {'met' if met else 'MISSED'}"

    lines = []
    for task_id, goal in STEP_GOALS_S.items():
        step = run.step(task_id)
        lines.append(line(task_id, step.task_s if step else None, goal))
        if step and step.task_s is not None and step.airflow_start_s:
            lines.append(line(f"{task_id} without Airflow's start", step.task_s - step.airflow_start_s, goal))
    for task_id in NVFLARE_STEPS:
        step = run.step(task_id)
        lines.append(line(f"operator work of {task_id}", operator_work_s(step) if step else None, OPERATOR_GOAL_S))
    ratio = run.wall_s / run.jobs_s if run.jobs_s else None
    lines.append(line("ratio (DAG run / NVFlare jobs)", ratio, RATIO_GOAL, unit=""))
    first = run.steps[0] if run.steps else None
    if ratio is not None and first is not None and first.airflow_start_s:
        # under ``dags test`` the first step also starts the in-process Execution API (a deployment's
        # api-server is up before any run)
        lines.append(line(f"ratio without {first.task_id}'s Airflow start", (run.wall_s - first.airflow_start_s)
                          / run.jobs_s, RATIO_GOAL, unit=""))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--month", help="the data month YYYY-MM (default: the last complete month, as the demo)")
    parser.add_argument("--conf", help="the run's params as JSON, e.g. '{\"rounds\": 5}' (default: the configs')")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    load_before = os.getloadavg()
    with stdout_to_stderr(), private_stack("flareflow-overhead-") as stack:
        month = options.month or last_complete_month(stack.config_dir)
        since = datetime.now(UTC)
        code = run_month(stack, month, options.conf)
        run = read_run(stack, since)
        # the stack's home goes with it: keep Airflow's full log of the run (every step's own lines)
        logs = sorted((stack.home / "logs").glob(f"{DAG_ID}-*.log"))
        kept = Path(tempfile.mkdtemp(prefix="pipeline-overhead-")) / logs[-1].name if logs else None
        if kept:
            shutil.copy(logs[-1], kept)
            read_airflow_starts(run, kept)
    load_after = os.getloadavg()

    print(json.dumps({"month": month, "conf": json.loads(options.conf or "{}"), "run_id": run.run_id,
                      "state": run.state, "exit_code": code, "airflow_log": str(kept)}))
    for line in table(run):
        print(line)
    print(f"load_1m before={load_before[0]:.1f} after={load_after[0]:.1f} cores={os.cpu_count()} "
          f"(load_5m after={load_after[1]:.1f})")
    for line in verdicts(run):
        print(line)
    ratio = run.wall_s / run.jobs_s if run.jobs_s else float("nan")
    print(f"pipeline_s={run.wall_s:.1f} nvflare_jobs_s={run.jobs_s:.1f} ratio={ratio:.2f}")
    return 0 if code == 0 and run.state == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
