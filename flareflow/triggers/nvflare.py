"""NVFlareJobTrigger: follow an NVFlare job from the triggerer until it ends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from flareflow.hooks.nvflare import COMPLETED, NVFlareHook, abort_job, is_terminal, job_status

if TYPE_CHECKING:
    from nvflare.fuel.flare_api.flare_api import Session

# COMPLETED and is_terminal live with the job lifecycle in the hook module; named here too for callers
# that read a trigger event's status
__all__ = ["COMPLETED", "TIMED_OUT", "NVFlareJobTrigger", "is_terminal"]

#: the status this trigger reports when the job outlived its time budget (and was aborted)
TIMED_OUT = "TIMED_OUT"
#: the first pauses between status checks, before ``poll_interval_s`` takes over: a short job's end is
#: seen soon after it happens (a status check is one small admin command)
FIRST_PAUSES_S = (0.5, 1.0, 2.0)


def poll_pauses(poll_interval_s: float) -> Iterator[float]:
    """Yield the pauses between a job's status checks: short at first, then ``poll_interval_s``.

    :param poll_interval_s: the configured interval; no pause is ever longer
    """
    for pause in FIRST_PAUSES_S:
        yield min(pause, poll_interval_s)
    while True:
        yield poll_interval_s


class NVFlareJobTrigger(BaseTrigger):
    """Poll an NVFlare job's status without holding a worker slot.

    Each status check uses the process's shared Flare API session (one login serves every trigger of
    the triggerer) through ``asyncio.to_thread``, so the triggerer's event loop never blocks on the
    synchronous Flare API.

    :param job_id: the NVFlare job to follow
    :param nvflare_conn_id: the Airflow connection of the NVFlare admin kit
    :param poll_interval_s: seconds between status checks (shorter at first: :func:`poll_pauses`)
    :param timeout_s: seconds after which the job is aborted and reported as timed out
    :param started_at: wall-clock start (epoch seconds) the timeout counts from
    """

    def __init__(
        self, job_id: str, nvflare_conn_id: str, poll_interval_s: float, timeout_s: float, started_at: float
    ) -> None:
        super().__init__()
        self.job_id = job_id
        self.nvflare_conn_id = nvflare_conn_id
        self.poll_interval_s = poll_interval_s
        self.timeout_s = timeout_s
        self.started_at = started_at

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_id": self.job_id,
                "nvflare_conn_id": self.nvflare_conn_id,
                "poll_interval_s": self.poll_interval_s,
                "timeout_s": self.timeout_s,
                "started_at": self.started_at,
            },
        )

    def _call(self, action: Callable[[Session, str], Any]) -> Any:
        """Run one lifecycle call on the job with the process's shared session (see ``shared_session``)."""
        with NVFlareHook(self.nvflare_conn_id).shared_session() as session:
            return action(session, self.job_id)

    async def _follow(self) -> dict[str, Any]:
        pauses = poll_pauses(self.poll_interval_s)
        while True:
            status = await asyncio.to_thread(self._call, job_status)
            if is_terminal(status):
                return {"job_id": self.job_id, "status": status}
            if time.time() - self.started_at > self.timeout_s:
                self.log.warning("NVFlare job %s ran over %ss; aborting it", self.job_id, self.timeout_s)
                await asyncio.to_thread(self._call, abort_job)
                return {"job_id": self.job_id, "status": TIMED_OUT, "last_status": status}
            await asyncio.sleep(next(pauses))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Yield one event with the job's final status (or the timeout), then stop."""
        try:
            payload = await self._follow()
        except Exception as err:  # reported to the operator, which raises a typed error
            payload = {"job_id": self.job_id, "status": "TRIGGER_ERROR", "error": f"{type(err).__name__}: {err}"}
        yield TriggerEvent(payload)

    async def on_kill(self) -> None:
        """Abort the NVFlare job: the task was marked failed or cleared while deferred."""
        self.log.info("task killed while deferred; aborting NVFlare job %s", self.job_id)

        def abort() -> None:
            with NVFlareHook(self.nvflare_conn_id, attempts=1).session() as session:
                abort_job(session, self.job_id)

        await asyncio.to_thread(abort)
