"""Progress a person can read while ``flareflow run`` / ``demo`` runs the DAG with ``airflow dags test``.

``airflow dags test`` writes Airflow's whole log (task logs, deprecation warnings, ...) to stdout. Here
it goes to a log file instead, and the terminal shows one line when each step starts and one when it
ends: its state, duration and, for NVFlare steps, the job id and sites (read from Airflow's metadata
database once a second: task instance states, then the step's XCom).

``dags test`` runs without a logical date, so the run starts now (its duration in the UI is real);
the data month is passed as the run's ``data_month`` param.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from psycopg2.extensions import connection as Connection

#: task instance states a step does not leave by itself
ENDED = ("success", "failed", "skipped", "upstream_failed", "removed")
_MARKS = {"success": "✓", "skipped": "-", "failed": "✗", "upstream_failed": "✗", "up_for_retry": "↻",
          "awaiting_input": "?", "deferred": "…"}


@dataclass
class Step:
    """What the terminal was last told about one task instance."""

    state: str | None = None
    started: datetime | None = None


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{seconds:.1f}s"


def _details(task_id: str, state: str, value: Any) -> str:
    """Return what a step's XCom says worth a line: an NVFlare job and its sites, a model version."""
    if not isinstance(value, Mapping):
        return ""
    parts = []
    if "job_id" in value:
        parts.append(f"NVFlare job {value['job_id']}")
    if value.get("sites") and "job_id" in value:
        parts.append(f"sites {', '.join(value['sites'])}")
    if "calendar_version" in value:
        role = "awaiting approval" if value.get("approval") == "awaiting" else value.get("role", "")
        parts.append(f"model {value['calendar_version']} {role}".strip())
    return "  ".join(parts)


@dataclass
class RunWatcher:
    """Report the steps of the newest ``dags test`` run of a DAG started after ``since``.

    :param connect: opens a connection to Airflow's metadata database
    :param dag_id: the DAG
    :param since: when the run was launched
    :param out: where the lines go
    """

    connect: Callable[[], Connection]
    dag_id: str
    since: datetime
    out: TextIO = sys.stdout
    run_id: str | None = None
    steps: dict[str, Step] = field(default_factory=dict)

    def _say(self, text: str, at: datetime | None = None) -> None:
        """Print a line stamped with ``at`` (when it happened, local time), else now."""
        moment = at.astimezone() if at is not None else datetime.now()
        self.out.write(f"{moment:%H:%M:%S}  {text}\n")
        self.out.flush()

    def _find_run(self, conn: Connection) -> None:
        with conn.cursor() as cur:
            cur.execute("SELECT run_id FROM dag_run WHERE dag_id = %s AND start_date >= %s"
                        " ORDER BY id DESC LIMIT 1", (self.dag_id, self.since))
            row = cur.fetchone()
        if row:
            self.run_id = str(row[0])
            self._say(f"run {self.run_id}")

    def _xcom(self, conn: Connection, task_id: str) -> Any:
        with conn.cursor() as cur:
            cur.execute("SELECT value FROM xcom WHERE dag_id = %s AND run_id = %s AND task_id = %s"
                        " AND key = 'return_value' AND map_index = -1", (self.dag_id, self.run_id, task_id))
            row = cur.fetchone()
        if row is None:
            return None
        value = row[0]  # jsonb: already decoded; text or bytes: JSON
        if isinstance(value, bytes | bytearray):
            value = value.decode()
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def poll(self) -> None:
        """Print a line for every step that started or changed state since the last poll."""
        with closing(self.connect()) as conn:
            conn.autocommit = True
            if self.run_id is None:
                self._find_run(conn)
                if self.run_id is None:
                    return
            with conn.cursor() as cur:
                cur.execute("SELECT task_id, state, start_date, end_date, try_number FROM task_instance"
                            " WHERE dag_id = %s AND run_id = %s ORDER BY start_date NULLS LAST, task_id",
                            (self.dag_id, self.run_id))
                rows = cur.fetchall()
            for task_id, state, start, end, try_number in rows:
                self._report(conn, task_id, state, start, end, try_number)

    def _report(self, conn: Connection, task_id: str, state: str | None, start: datetime | None,
                end: datetime | None, try_number: int) -> None:
        step = self.steps.setdefault(task_id, Step())
        if state == step.state or state in (None, "scheduled", "queued", "none"):
            return
        if step.state is None and state not in ("skipped", "upstream_failed"):
            self._say(f"▶ {task_id:<20} started{f' (try {try_number})' if try_number > 1 else ''}", start)
        step.state = state
        if state == "running":
            return
        took = (end - start).total_seconds() if start and end else None
        if state == "deferred":
            self._say(f"{_MARKS[state]} {task_id:<20} deferred: waiting for its NVFlare job")
        elif state == "awaiting_input":
            self._say(f"{_MARKS[state]} {task_id:<20} awaits a person's answer in the Airflow UI (Required actions)")
        else:
            details = _details(task_id, state, self._xcom(conn, task_id)) if state == "success" else ""
            self._say(f"{_MARKS.get(state, '·')} {task_id:<20} {state:<9} {_duration(took):>7}  {details}".rstrip(),
                      end)

    def summary(self) -> dict[str, str]:
        """Return each step's last state."""
        return {task_id: str(step.state) for task_id, step in self.steps.items()}


def _poll(watcher: RunWatcher, out: TextIO) -> None:
    """Poll, saying so when the metadata database cannot be read (the run goes on; its log says all)."""
    try:
        watcher.poll()
    except Exception as err:  # the display must never stop the run it follows
        out.write(f"(progress not readable this time: {type(err).__name__}: {err})\n")


def quiet_terminal() -> None:
    """Keep library chatter out of the terminal: NVFlare's connection logs, Python's warnings."""
    logging.getLogger("nvflare").setLevel(logging.WARNING)
    logging.getLogger("py.warnings").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")


def run_with_progress(argv: list[str], *, env: Mapping[str, str], cwd: Path, log_file: Path,
                      connect: Callable[[], Connection], dag_id: str, out: TextIO = sys.stdout,
                      interval_s: float = 1.0) -> int:
    """Run an ``airflow dags test`` command, its output into ``log_file``, printing each step's progress.

    :param argv: the command
    :param env: its environment
    :param cwd: its working folder
    :param log_file: where Airflow's full output goes
    :param connect: opens a connection to Airflow's metadata database
    :param dag_id: the DAG the command runs
    :param out: where the progress lines go
    :param interval_s: how often the metadata database is read
    :return: the command's exit code
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    since = datetime.now(UTC)
    watcher = RunWatcher(connect, dag_id, since, out)
    out.write(f"full Airflow log: {log_file}\n")
    out.flush()
    with log_file.open("w") as log:
        process = subprocess.Popen(argv, env=dict(env), cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        while process.poll() is None:
            time.sleep(interval_s)
            _poll(watcher, out)
    _poll(watcher, out)
    failed = [task for task, state in watcher.summary().items() if state in ("failed", "upstream_failed")]
    took = _duration((datetime.now(UTC) - since).total_seconds())
    verdict = "succeeded" if process.returncode == 0 and not failed else "FAILED"
    out.write(f"run {watcher.run_id or '(not started)'} {verdict} in {took}\n")
    if verdict == "FAILED":
        out.write(f"  failed steps: {', '.join(failed) or 'none recorded'}; the reason is in {log_file}\n")
    out.flush()
    return process.returncode if process.returncode else (1 if failed else 0)


def last_complete_month(config_dir: Path) -> str:
    """Return the last complete calendar month ``YYYY-MM`` now, in the schedule's timezone.

    :param config_dir: the config folder (its schedule's timezone)
    """
    from flareflow.config import read_schedule
    from flareflow.data_interval import last_complete_month as month_before

    return month_before(datetime.now(UTC), read_schedule(config_dir).timezone).month
