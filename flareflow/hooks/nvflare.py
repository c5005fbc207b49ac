"""NVFlare from Airflow: the hook (connection -> Flare API session), the site gate, the job lifecycle.

The connection (type ``nvflare``) names the admin startup kit and the admin user in its extra, as the
UI's connection form asks for them (``conn-fields`` in :func:`flareflow.get_provider_info`)::

    AIRFLOW_CONN_NVFLARE_DEFAULT='{"conn_type": "nvflare",
        "extra": {"startup_kit": "/path/to/admin@nvidia.com", "username": "admin@nvidia.com"}}'

The hook keeps no job state between calls. :meth:`NVFlareHook.session` logs in anew each time;
:meth:`NVFlareHook.shared_session` reuses one logged-in session per admin kit in the process (a login
takes 1-3 s, most of it NVFlare's fixed one-second re-challenge), checked with a cheap command before
each use: the operator's steps and the triggerer's status checks use it. The job lifecycle (find a job
by its submit token, submit, status, wait, abort, download, why it failed) is a set of functions taking
an open session, so that one login serves many calls; the operator, the trigger, the tests and the
benchmarks all use them.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook
from nvflare.fuel.flare_api.api_spec import NoClientsAvailable, NoConnection, NoReply
from nvflare.fuel.flare_api.flare_api import Session, new_secure_session

from fl_tasks.jobs import FAILURE_FILE

log = logging.getLogger(__name__)


class NVFlareUnavailable(ConnectionError):
    """The NVFlare server could not be reached within the retry bound."""


class SitesMissing(RuntimeError):
    """Configured sites were not connected to the NVFlare server in time.

    :param missing: the sites that never connected
    """

    def __init__(self, missing: Sequence[str], message: str) -> None:
        self.missing = list(missing)
        super().__init__(message)


def open_session(
    startup_kit: str, username: str, *, login_timeout_s: float = 10, attempts: int = 3, backoff_s: float = 2
) -> Session:
    """Log in to the NVFlare server, retrying with exponential backoff.

    :param startup_kit: the admin startup kit folder (the one holding ``startup/``)
    :param username: the admin user of that kit
    :param login_timeout_s: how long one login attempt may take
    :param attempts: how many logins to try before giving up
    :param backoff_s: the first pause between attempts; it doubles each time
    """
    kit = Path(startup_kit)
    if not (kit / "startup").is_dir():
        raise FileNotFoundError(f"no NVFlare admin startup kit at {kit} (expected {kit / 'startup'})")
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            return new_secure_session(username, str(kit), timeout=login_timeout_s)
        except NoConnection as err:
            last = err
            log.warning("NVFlare login %s/%s failed: %s", attempt, attempts, err)
            if attempt < attempts:
                time.sleep(backoff_s * 2 ** (attempt - 1))
    raise NVFlareUnavailable(
        f"cannot reach the NVFlare server named in {kit / 'startup' / 'fed_admin.json'} "
        f"({_server_address(kit)}) after {attempts} attempts"
    ) from last


def _server_address(kit: Path) -> str:
    """Return the server address an admin kit points at, for error messages."""
    try:
        admin = json.loads((kit / "startup" / "fed_admin.json").read_text())["admin"]
        return f"{admin.get('host', '?')}:{admin.get('port', '?')}"
    except (OSError, KeyError, ValueError):
        return "unknown address"


#: the status ``check_status client`` gives a listed client that did not answer
_NO_REPLY = "no_reply"


def connected_sites(session: Session) -> list[str]:
    """Return the names of the client sites connected to the server and answering now.

    The server keeps listing a client whose process died until its heartbeat timeout (600 s by
    default) has passed, so each listed client is asked for its status (``check_status client``) and
    one that gives no reply is left out. If that query itself fails (the admin command times out when
    a live but busy client is slow to answer), the listed clients are returned, as the server sees them.
    """
    listed = sorted({client.name for client in session.get_system_info().client_info})
    if not listed:
        return []
    try:
        replies = session.get_client_job_status() or []
    except NoClientsAvailable:  # the last client left between the two commands
        return []
    except (NoConnection, NoReply) as err:
        log.warning("asking the sites for their status failed (%s); going by the server's list", err)
        return listed
    answering = {reply.get("client_name") for reply in replies if reply.get("status") != _NO_REPLY}
    return [name for name in listed if name in answering]


def wait_for_sites(
    session: Session, sites: Sequence[str], *, timeout_s: float, min_sites: int | None = None,
    poll_s: float = 2,
) -> list[str]:
    """Wait until the configured sites are connected; return the connected configured sites.

    :param session: an open Flare API session
    :param sites: the configured sites
    :param timeout_s: how long to wait for all of them
    :param min_sites: if set, accept this many once the timeout has passed
    :param poll_s: the pause between checks
    """
    needed = len(sites) if min_sites is None else min_sites
    deadline = time.monotonic() + timeout_s
    while True:
        connected = set(connected_sites(session))
        present = [site for site in sites if site in connected]
        if len(present) == len(sites):
            return present
        if time.monotonic() >= deadline:
            missing = [site for site in sites if site not in present]
            if len(present) >= needed:
                log.warning("going on without sites %s (%s of %s connected)", missing, len(present), needed)
                return present
            raise SitesMissing(
                missing,
                f"sites not connected to NVFlare after {timeout_s:.0f}s: {', '.join(missing)} "
                f"({len(present)} connected, {needed} required)",
            )
        time.sleep(poll_s)


#: logged-in sessions kept for reuse in this process, per (admin kit, user): see NVFlareHook.shared_session
_SHARED: dict[tuple[str, str], Session] = {}
_SHARED_LOCK = threading.RLock()
#: a submit token no job holds: listing its jobs is the cheapest command that proves a session works
_PROBE_TOKEN = "flareflow.session-probe"


def _answers(session: Session) -> bool:
    """Return whether a kept session still works (the server answers a cheap command)."""
    try:
        session.list_jobs(submit_token=_PROBE_TOKEN)
    except Exception as err:  # closed, expired, server gone: the caller logs in anew
        log.info("a kept NVFlare session no longer answers (%s: %s); logging in anew", type(err).__name__, err)
        return False
    return True


def _close_quietly(session: Session) -> None:
    try:
        session.close()
    except Exception as err:  # a broken session may fail to close; it is dropped all the same
        log.debug("closing an NVFlare session failed: %s", err)


def close_shared_sessions() -> int:
    """Close every session kept for reuse in this process; return how many there were."""
    with _SHARED_LOCK:
        sessions = list(_SHARED.values())
        _SHARED.clear()
    for session in sessions:
        _close_quietly(session)
    return len(sessions)


# A Flare API session runs non-daemon threads: the interpreter would wait for them forever at exit.
# threading's own exit hook runs before it joins such threads (atexit's would run after).
threading._register_atexit(close_shared_sessions)  # type: ignore[attr-defined]


class NVFlareHook(BaseHook):
    """Open Flare API sessions from an Airflow connection.

    :param nvflare_conn_id: the Airflow connection naming the admin startup kit and user
    :param login_timeout_s: how long one login attempt may take
    :param attempts: how many logins to try before failing
    """

    conn_name_attr = "nvflare_conn_id"
    default_conn_name = "nvflare_default"
    conn_type = "nvflare"
    hook_name = "NVIDIA FLARE"

    def __init__(
        self, nvflare_conn_id: str = default_conn_name, *, login_timeout_s: float = 10, attempts: int = 3
    ) -> None:
        super().__init__()
        self.nvflare_conn_id = nvflare_conn_id
        self.login_timeout_s = login_timeout_s
        self.attempts = attempts

    def _kit(self) -> tuple[str, str]:
        """Return the admin startup kit folder and user the connection's extra names."""
        extra: dict[str, Any] = self.get_connection(self.nvflare_conn_id).extra_dejson
        missing = [name for name in ("startup_kit", "username") if not extra.get(name)]
        if missing:  # the UI's form saves an untouched field as empty
            raise ValueError(f"Airflow connection {self.nvflare_conn_id!r} lacks extra field(s) "
                             f"{', '.join(repr(name) for name in missing)}")
        return str(extra["startup_kit"]), str(extra["username"])

    def get_conn(self) -> Session:
        """Return a new, logged-in Flare API session; the caller closes it."""
        kit, username = self._kit()
        return open_session(kit, username, login_timeout_s=self.login_timeout_s, attempts=self.attempts)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Yield a logged-in session and close it afterwards."""
        session = self.get_conn()
        try:
            yield session
        finally:
            session.close()

    @contextmanager
    def shared_session(self) -> Iterator[Session]:
        """Yield this process's logged-in session of the connection's admin kit, logging in if there is none.

        The session is checked with a cheap command first (a dead or expired one is replaced by a new
        login, so a broken connection fails as :meth:`session` does: :class:`NVFlareUnavailable`). One
        caller at a time uses it (the Flare API session is not thread-safe); one that raises drops it,
        so the next caller logs in anew. Sessions kept are closed before the interpreter exits.
        """
        key = self._kit()
        with _SHARED_LOCK:
            session = _SHARED.pop(key, None)
            if session is not None and not _answers(session):
                _close_quietly(session)
                session = None
            if session is None:
                session = open_session(*key, login_timeout_s=self.login_timeout_s, attempts=self.attempts)
            try:
                yield session
            except BaseException:
                _close_quietly(session)
                raise
            _SHARED[key] = session

    def test_connection(self) -> tuple[bool, str]:
        """Log in with the connection's admin kit; return (True, the connected sites) or (False, why)."""
        try:
            with self.session() as session:
                sites = connected_sites(session)
        except Exception as err:  # reported to the UI, which shows the message
            return False, f"{type(err).__name__}: {err}"
        return True, f"connected sites: {', '.join(sites) or 'none'}"


# -- the job lifecycle: every caller (operator, trigger, tests, benchmarks) goes through these ----------
#: the status NVFlare gives a job that ran to its end without error
COMPLETED = "FINISHED:COMPLETED"


class NVFlareJobError(RuntimeError):
    """An NVFlare job did not complete, or completed without a full result."""


class NVFlareJobTimeout(NVFlareJobError, TimeoutError):
    """NVFlare jobs did not end in time.

    :param statuses: the last status of each job that was still running
    """

    def __init__(self, statuses: Mapping[str, str], message: str) -> None:
        self.statuses = dict(statuses)
        super().__init__(message)


def is_terminal(status: str | None) -> bool:
    """Return True for a status after which an NVFlare job never changes again."""
    return bool(status) and str(status).startswith("FINISHED")


def is_failed(status: str | None) -> bool:
    """Return True for a job that ended without completing (aborted, crashed, never scheduled …)."""
    return is_terminal(status) and status != COMPLETED


def list_jobs(session: Session, *, submit_token: str | None = None, name: str | None = None) -> dict[str, str]:
    """Return job id -> status of the jobs the server knows (any status), in the server's order.

    :param submit_token: only the job(s) submitted with this retry-safe token
    :param name: only the jobs of this name
    """
    jobs = session.list_jobs(submit_token=submit_token) or []
    return {str(job["job_id"]): str(job.get("status", "")) for job in jobs
            if name is None or job.get("job_name") == name}


def find_job(session: Session, submit_token: str) -> tuple[str, str] | None:
    """Return the id and status of the job submitted with ``submit_token``, or None if there is none."""
    return next(iter(list_jobs(session, submit_token=submit_token).items()), None)


def submit_job(session: Session, job_folder: Path, *, submit_token: str | None = None) -> str:
    """Submit an exported job folder; return its job id.

    :param submit_token: a token that lets a retry find this job instead of submitting it again
    """
    job_id = str(session.submit_job(str(job_folder), submit_token=submit_token))
    log.debug("submitted NVFlare job %s from %s", job_id, job_folder)
    return job_id


def job_meta(session: Session, job_id: str) -> dict[str, Any]:
    """Return a job's meta as the server holds it (status, ``mandatory_clients``, times …)."""
    return dict(session.get_job_meta(job_id))


def job_status(session: Session, job_id: str) -> str:
    """Return a job's status, e.g. ``RUNNING`` or ``FINISHED:COMPLETED``."""
    return str(job_meta(session, job_id).get("status", ""))


def abort_job(session: Session, job_id: str) -> bool:
    """Abort a job unless it has ended already; return whether it was aborted."""
    if is_terminal(job_status(session, job_id)):
        return False
    log.info("aborting NVFlare job %s", job_id)
    session.abort_job(job_id)
    return True


def wait_for_jobs(session: Session, job_ids: Sequence[str], *, timeout_s: float, poll_s: float = 2) -> dict[str, str]:
    """Wait until every job has ended; return job id -> final status (in the order of ``job_ids``).

    :param timeout_s: how long to wait for all of them together
    :param poll_s: the pause between status checks
    :raises NVFlareJobTimeout: naming the jobs still running at the deadline (they keep running)
    """
    deadline = time.monotonic() + timeout_s
    ended: dict[str, str] = {}
    while True:
        running = {}
        for job_id in job_ids:
            if job_id not in ended:
                status = job_status(session, job_id)
                if is_terminal(status):
                    ended[job_id] = status
                    log.info("NVFlare job %s ended %s", job_id, status)
                else:
                    running[job_id] = status
        if not running:
            return {job_id: ended[job_id] for job_id in job_ids}
        if time.monotonic() > deadline:
            late = ", ".join(f"{job_id} ({status})" for job_id, status in running.items())
            raise NVFlareJobTimeout(running, f"NVFlare jobs still running after {timeout_s:.0f}s: {late}")
        time.sleep(poll_s)


def download_result(session: Session, job_id: str, destination: Path) -> Path:
    """Download a job's result into ``destination/<job_id>`` (replacing an earlier copy); return it."""
    shutil.rmtree(destination / job_id, ignore_errors=True)
    destination.mkdir(parents=True, exist_ok=True)
    return Path(session.download_job_result(job_id, destination=str(destination)))


def failure_reason(session: Session, job_id: str, destination: Path) -> str | None:
    """Return why a job failed, from the failure file its workflow wrote, or None if it left none.

    :param destination: where the job's workspace is downloaded to read it
    """
    try:
        failure = download_result(session, job_id, destination) / "workspace" / FAILURE_FILE
    except Exception as err:  # a job that never ran has nothing to download
        log.info("no workspace to download for NVFlare job %s: %s", job_id, err)
        return None
    return str(json.loads(failure.read_text())["reason"]) if failure.is_file() else None


def fetch_result(session: Session, job_id: str, destination: Path, job_module: Any, sites: Sequence[str]) -> Path:
    """Download a completed job's result file and check that it names every site; return the file.

    :param job_module: the job's module (``fl_tasks.stats.job`` …), providing ``RESULT_FILE`` and
        ``result_sites``
    :param sites: the sites the result must hold
    :raises NVFlareJobError: when the result file is missing or lacks a site
    """
    result_file = download_result(session, job_id, destination) / "workspace" / job_module.RESULT_FILE
    if not result_file.is_file():
        raise NVFlareJobError(f"NVFlare job {job_id} completed without its result {result_file}")
    missing = sorted(set(sites) - job_module.result_sites(json.loads(result_file.read_text())))
    if missing:
        raise NVFlareJobError(f"NVFlare job {job_id}: result lacks site(s) {', '.join(missing)}")
    return result_file
