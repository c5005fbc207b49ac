"""NVFlareJobOperator: gate on the federation, submit a job once, defer, check and fetch its result."""

from __future__ import annotations

import hashlib
import importlib
import json
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from fl_tasks.jobs import export_job
from flareflow.data_interval import run_interval, schedule_timezone
from flareflow.hooks.nvflare import (
    COMPLETED,
    NVFlareHook,
    NVFlareJobError,
    abort_job,
    failure_reason,
    fetch_result,
    find_job,
    is_failed,
    job_meta,
    submit_job,
    wait_for_sites,
)
from flareflow.paths import safe_name, task_dir
from flareflow.triggers.nvflare import NVFlareJobTrigger

if TYPE_CHECKING:
    from nvflare.fuel.flare_api.flare_api import Session


class NVFlareJobFailed(AirflowException):
    """The NVFlare job did not complete, or its result is incomplete."""


class NVFlareResultRejected(NVFlareJobFailed, AirflowFailException):
    """The job completed, but its result says the run must stop (e.g. hospitals' data breaks the contract).

    Not retried: someone has to act first (the message says on what).
    """


def work_dir(context: Context) -> Path:
    """Return the folder of this task's job export and downloaded result."""
    ti = context["ti"]
    return task_dir(ti.dag_id, ti.run_id, ti.task_id)


def _timings_file(context: Context) -> Path:
    """Return the file where :meth:`NVFlareJobOperator.execute` leaves the seconds its parts took."""
    folder = work_dir(context)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "operator_timings.json"


def submit_token(dag_id: str, run_id: str, task_id: str, inputs: Mapping[str, Any], attempt: int) -> str:
    """Return the retry-safe NVFlare submit token of one task's job.

    The same task of the same run with the same inputs gets the same token, so an Airflow retry
    finds the job it already submitted. ``attempt`` moves on only after a job ended in failure.
    """
    digest = hashlib.sha256(json.dumps([dag_id, run_id, task_id, inputs], sort_keys=True, default=str).encode())
    return f"flareflow.{safe_name(task_id)[:40]}.{digest.hexdigest()[:32]}.{attempt}"


class _Clock:
    """Seconds spent on each named part of the operator's work, in order (for its log and its XCom)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps[name] = round(now - self._last, 3)
        self._last = now

    def __str__(self) -> str:
        return ", ".join(f"{name} {seconds:.2f} s" for name, seconds in self.laps.items())


class NVFlareJobOperator(BaseOperator):
    """Run one flareflow job on NVFlare and return where its result is (no data in XCom), with the seconds
    its own work around the job took (``operator_s``: login, gate, export, submit, then download).

    The job module (``fl_tasks.stats.job`` …) provides ``build_job``, ``RESULT_FILE`` and
    ``result_sites``. Its merged config comes from the validation task's XCom; the federation
    settings in it (connection, sites, timeouts) drive the gate, the polling and the timeout.

    A module may also judge a completed job's result: ``result_problems(result) -> list[str]``; any
    problem fails the task (:class:`NVFlareResultRejected`, not retried) with all of them in one
    message. Such a job runs anew at every try of the task (its submit token includes the try number),
    so that clearing the task after the problems were fixed judges fresh results.

    :param job: the dotted path of the job module
    :param config_job: which job's merged config to use (``stats``, ``train``, ``shap``)
    :param config_task_id: the task whose XCom holds the validated configs
    :param inputs: ``build_job`` argument -> upstream NVFlare task whose result file it gets
    :param job_args: further keyword arguments of ``build_job`` (templated)
    """

    template_fields: Sequence[str] = ("job_args",)

    def __init__(
        self, *, job: str, config_job: str, config_task_id: str = "validate_config",
        inputs: Mapping[str, str] | None = None, job_args: dict[str, Any] | None = None, **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job = job
        self.config_job = config_job
        self.config_task_id = config_task_id
        self.inputs = dict(inputs or {})
        self.job_args = dict(job_args or {})
        self._job_id: str | None = None
        self._conn_id: str | None = None

    def _module(self) -> Any:
        return importlib.import_module(self.job)

    def _judges_results(self) -> bool:
        return hasattr(self._module(), "result_problems")

    def _build_args(self, context: Context) -> dict[str, Any]:
        """Return ``build_job``'s arguments for this run: config, date bound, upstream results.

        The date bound is the end of the run's data interval (:func:`flareflow.data_interval.run_interval`).
        """
        ti = context["ti"]
        validated = ti.xcom_pull(task_ids=self.config_task_id)
        if not validated:
            raise NVFlareJobFailed(f"no validated config in the XCom of task {self.config_task_id!r}")
        interval = run_interval(context, schedule_timezone(validated))
        args: dict[str, Any] = {"config": validated["jobs"][self.config_job], "until": interval.end.date().isoformat()}
        for name, task_id in self.inputs.items():
            upstream = ti.xcom_pull(task_ids=task_id)
            if not upstream or "result_file" not in upstream:
                raise NVFlareJobFailed(f"task {task_id!r} left no result file for {name!r}")
            args[name] = upstream["result_file"]
        return {**args, **self.job_args}

    def _existing_job(self, session: Session, context: Context, args: Mapping[str, Any]) -> tuple[str, str | None]:
        """Return the token to use and the id of a live or completed job already holding it."""
        ti = context["ti"]
        inputs = {**args, "try_number": ti.try_number} if self._judges_results() else args
        for attempt in range(1, 100):
            token = submit_token(ti.dag_id, ti.run_id, ti.task_id, inputs, attempt)
            found = find_job(session, token)
            if found is None:
                return token, None
            job_id, status = found
            if not is_failed(status):
                return token, job_id
        raise NVFlareJobFailed(f"{ti.task_id}: 99 failed NVFlare jobs for this run; giving up")

    # -- execution --------------------------------------------------------------------------------
    def execute(self, context: Context) -> None:
        args = self._build_args(context)
        fed = args["config"]["federation"]
        self._conn_id = fed["conn_id"]
        clock = _Clock()
        self._module()  # the job module (NVFlare's job API with it), imported once per process
        clock.lap("import")
        with NVFlareHook(fed["conn_id"]).shared_session() as session:
            clock.lap("login")
            token, job_id = self._existing_job(session, context, args)
            clock.lap("find")
            if job_id:
                self.log.info("following NVFlare job %s submitted by an earlier try", job_id)
            else:
                sites = wait_for_sites(session, fed["sites"], timeout_s=fed["gate_timeout_s"],
                                       min_sites=fed["min_sites"])
                clock.lap("gate")
                job_folder = export_job(self._module(), work_dir(context) / "job", safe_name(self.task_id),
                                        sites, args)
                clock.lap("export")
                job_id = submit_job(session, job_folder, submit_token=token)
                clock.lap("submit")
                self.log.info("submitted NVFlare job %s for sites %s", job_id, sites)
            self._job_id = job_id
        self.log.info("before NVFlare job %s: %s", job_id, clock)
        # for execute_complete, which may run in another process (the work folder is shared, as results are)
        _timings_file(context).write_text(json.dumps(clock.laps))
        self.defer(
            trigger=NVFlareJobTrigger(job_id=job_id, nvflare_conn_id=fed["conn_id"],
                                      poll_interval_s=fed["poll_interval_s"], timeout_s=fed["job_timeout_s"],
                                      started_at=time.time()),
            method_name="execute_complete",
            timeout=timedelta(seconds=fed["job_timeout_s"] + 300),
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Check the job's end, fetch its result and check that every site it required is in it.

        :param event: the trigger's event (job id, final status)
        :return: the job id, the result file, the sites, and the seconds this operator spent on its own
            work around the job (``operator_s``: :meth:`execute`'s parts, then login and download here)
        """
        job_id, status = event["job_id"], event["status"]
        clock = _Clock()
        conn_id = self._build_args(context)["config"]["federation"]["conn_id"]
        self._job_id, self._conn_id = job_id, conn_id
        destination = work_dir(context) / "result"
        with NVFlareHook(conn_id).shared_session() as session:
            clock.lap("login_after")
            sites = list(job_meta(session, job_id).get("mandatory_clients") or [])
            if status != COMPLETED:
                reason = event.get("error") or failure_reason(session, job_id, destination)
                raise NVFlareJobFailed(f"NVFlare job {job_id} ended {status}{f': {reason}' if reason else ''}")
            try:
                result_file = fetch_result(session, job_id, destination, self._module(), sites)
            except NVFlareJobError as err:
                raise NVFlareJobFailed(str(err)) from err
            clock.lap("download")
        self._judge(job_id, json.loads(result_file.read_text()))
        clock.lap("judge")
        self.log.info("NVFlare job %s completed with sites %s; after it: %s", job_id, sorted(sites), clock)
        try:
            before = json.loads(_timings_file(context).read_text())
        except (OSError, ValueError):  # an execute of an older flareflow left none
            before = {}
        return {"job_id": job_id, "result_file": str(result_file), "sites": sorted(sites),
                "operator_s": {**before, **clock.laps}}

    def _judge(self, job_id: str, result: Any) -> None:
        """Fail the task with every problem the job module finds in a completed job's result."""
        if not self._judges_results():
            return
        problems = list(self._module().result_problems(result))
        if problems:
            lines = "\n".join(f"  - {problem}" for problem in problems)
            raise NVFlareResultRejected(
                f"{self.task_id}: NVFlare job {job_id} completed, and its result has {len(problems)} "
                f"problem(s):\n{lines}")

    def on_kill(self) -> None:
        """Abort the NVFlare job when Airflow kills the task while it runs in a worker."""
        if not (self._job_id and self._conn_id):
            return
        with NVFlareHook(self._conn_id, attempts=1).session() as session:
            abort_job(session, self._job_id)
