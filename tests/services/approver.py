"""A person at the Airflow UI, played through the REST API: approve one run's model, leave the others unanswered.

While the session's runs execute, :class:`Approver` polls the open human-in-the-loop requests of the
DAG every two seconds. The first request of the run it approves is answered *Approve* (with a
comment) by the ``operator`` user; any other is left to time out. Before answering it records how
the waiting task looked: its state and whether it held a trigger (it should do neither: ``awaiting_input``
is no worker slot and no triggerer).
"""

from __future__ import annotations

import threading
import time
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from real_services import AirflowServices

from benchmarks._airflow import query
from flareflow.local.cli import DAG_ID

TASK = "approve_promotion"
COMMENT = "checked the validation curves"


@dataclass
class Waiting:
    """How an approval task looked while it waited: state, trigger, and the request's subject and options."""

    run_id: str
    state: str
    trigger_id: int | None
    subject: str
    options: list[str]
    params: list[str]
    seen_at: float


class Approver(threading.Thread):
    """Approve the model of ``approve_run`` as soon as it waits; record every request seen.

    :param services: the running services
    :param approve_run: the run whose version to approve
    """

    def __init__(self, services: AirflowServices, approve_run: str) -> None:
        super().__init__(name="approver", daemon=True)
        self.services = services
        self.approve_run = approve_run
        self.seen: dict[str, Waiting] = {}
        self.answered: dict[str, Any] = {}
        self.error: BaseException | None = None
        self._halted = threading.Event()

    def run(self) -> None:
        try:
            while not self._halted.wait(2):
                for detail in self.services.hitl_details(response_received="false"):
                    self._look(detail)
        except BaseException as error:  # reported by the fixture
            self.error = error

    def _look(self, detail: dict[str, Any]) -> None:
        run_id = detail["task_instance"]["dag_run_id"]
        if run_id not in self.seen:
            with closing(self.services.airflow.metadata_db()) as conn:
                ((state, trigger_id),) = query(conn, "SELECT state, trigger_id FROM task_instance WHERE dag_id = %s"
                                                     " AND run_id = %s AND task_id = %s", DAG_ID, run_id, TASK)
            self.seen[run_id] = Waiting(run_id, str(state), trigger_id, detail["subject"], list(detail["options"]),
                                        sorted(detail.get("params") or {}), time.monotonic())
        if run_id == self.approve_run and run_id not in self.answered:
            self.answered[run_id] = self.services.answer(run_id, TASK, "Approve", COMMENT)

    def halt(self) -> None:
        """Stop polling; raise what went wrong in the thread, if anything."""
        self._halted.set()
        self.join(timeout=60)
        if self.error is not None:
            raise self.error
