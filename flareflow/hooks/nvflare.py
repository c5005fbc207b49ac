"""NVFlareHook: an Airflow connection -> a Flare API session with the NVFlare admin server.

The connection (type ``nvflare``) names the admin startup kit and the admin user in its extra::

    AIRFLOW_CONN_NVFLARE_DEFAULT='{"conn_type": "nvflare",
        "extra": {"startup_kit": "/path/to/admin@nvidia.com", "username": "admin@nvidia.com"}}'

The hook keeps no session and no job state between calls: each :meth:`session` logs in anew.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook
from nvflare.fuel.flare_api.api_spec import NoClientsAvailable, NoConnection, NoReply
from nvflare.fuel.flare_api.flare_api import Session, new_secure_session

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
    import json

    try:
        admin = json.loads((kit / "startup" / "fed_admin.json").read_text())["admin"]
        return f"{admin.get('host', '?')}:{admin.get('port', '?')}"
    except (OSError, KeyError, ValueError):
        return "unknown address"


def download_result(session: Session, job_id: str, destination: Path) -> Path:
    """Download a job's result into ``destination/<job_id>`` (replacing an earlier copy); return it."""
    shutil.rmtree(destination / job_id, ignore_errors=True)
    destination.mkdir(parents=True, exist_ok=True)
    return Path(session.download_job_result(job_id, destination=str(destination)))


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
        extra: dict[str, Any] = self.get_connection(self.nvflare_conn_id).extra_dejson
        try:
            return str(extra["startup_kit"]), str(extra["username"])
        except KeyError as err:
            raise ValueError(
                f"Airflow connection {self.nvflare_conn_id!r} lacks extra field {err.args[0]!r}"
            ) from err

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
