"""NVFlare in POC mode on localhost: one server and one client per hospital site."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from flareflow.local.processes import pid_alive

log = logging.getLogger(__name__)

ADMIN_USER = "admin@nvidia.com"  # the project admin POC mode provisions
DEFAULT_PORT = 8002  # NVFlare's POC server port
_PROJECT_DIR = Path("example_project") / "prod_00"


class NVFlarePOC:
    """A POC deployment whose workspace lives in ``workspace``.

    :param workspace: the POC workspace folder (``NVFLARE_POC_WORKSPACE``)
    :param sites: the hospital sites, one NVFlare client each
    :param env: the environment of the ``nvflare`` commands and of the processes they start
    :param port: the server's port (another than 8002 lets two federations run side by side)
    """

    def __init__(
        self, workspace: Path, sites: Sequence[str], env: Mapping[str, str], port: int = DEFAULT_PORT
    ) -> None:
        self.workspace = workspace
        self.sites = list(sites)
        self.port = port
        self.env = {**env, "NVFLARE_POC_WORKSPACE": str(workspace)}

    @property
    def project_dir(self) -> Path:
        return self.workspace / _PROJECT_DIR

    @property
    def admin_kit(self) -> Path:
        """Return the admin startup kit the Flare API logs in with."""
        return self.project_dir / ADMIN_USER

    def site_workspace(self, site: str) -> Path:
        """Return the workspace root of one site (its ``local/`` folder holds its data)."""
        return self.project_dir / site

    def _nvflare(self, *args: str, timeout: float = 300) -> None:
        result = subprocess.run(
            ["nvflare", "poc", *args], env=self.env, capture_output=True, text=True,
            stdin=subprocess.DEVNULL, timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"'nvflare poc {' '.join(args)}' failed ({result.returncode}):\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            )

    def is_prepared(self) -> bool:
        """Return True when the workspace holds a kit for the server, the admin and every site."""
        return all((self.project_dir / name / "startup").is_dir()
                   for name in ["server", ADMIN_USER, *self.sites])

    def prepare(self) -> None:
        """Provision the POC workspace for exactly the configured sites (replacing an old one)."""
        self._nvflare("prepare", "-c", *self.sites, "--force")
        if self.port != DEFAULT_PORT:  # provision again from the same project, on our port
            project = yaml.safe_load((self.workspace / "project.yml").read_text())
            for participant in project["participants"]:
                if participant["type"] == "server":
                    participant["fed_learn_port"] = self.port
            project_file = self.workspace.with_name(f"{self.workspace.name}-project.yml")
            project_file.write_text(yaml.safe_dump(project, sort_keys=False))
            self._nvflare("prepare", "-i", str(project_file), "--force")

    def _pids(self) -> list[int]:
        pids = []
        for name in ["server", *self.sites]:
            for pid_file in ("daemon_pid.fl", "pid.fl"):
                path = self.project_dir / name / pid_file
                try:
                    pids.append(int(path.read_text().strip()))
                except (FileNotFoundError, ValueError):
                    continue
        return [pid for pid in pids if pid_alive(pid)]

    def is_running(self) -> bool:
        """Return True when any server or site process of this workspace runs."""
        return bool(self._pids())

    def start(self) -> None:
        """Start the server and every site; return without waiting for them to connect.

        The caller waits for the sites itself (``wait_for_sites``, with its own bound): NVFlare's
        30 s readiness wait is too short for four clients starting on a busy two-core machine.
        """
        self._nvflare("start", "--no-wait", "-p", "server", *[arg for site in self.sites for arg in ("-p", site)])

    def wait_until_listening(self, timeout_s: float = 120) -> bool:
        """Wait until the server accepts connections on its port; return whether it did in time.

        Logging in before that makes NVFlare's connector print a connection error for every try.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                if not self.is_running():
                    return False
                time.sleep(0.5)
        return False

    def stop(self, grace_s: float = 30) -> None:
        """Shut the system down through NVFlare, then end any process of it still running."""
        if not self.is_running():
            return
        try:
            self._nvflare("stop", timeout=120)
        except (RuntimeError, subprocess.TimeoutExpired) as err:
            log.warning("nvflare poc stop failed, stopping the processes directly: %s", err)
        deadline = time.monotonic() + grace_s
        while self._pids() and time.monotonic() < deadline:
            time.sleep(0.5)
        for pid in self._pids():
            _kill_group(pid)


def _kill_group(pid: int) -> None:
    for target in (lambda: os.killpg(os.getpgid(pid), signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
            return
        except (ProcessLookupError, PermissionError):
            continue
