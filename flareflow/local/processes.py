"""Background processes of the local stack, each tracked by a pid file so ``down`` stops exactly them."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Service:
    """One long-running process of the stack.

    :param name: short name, also the stem of its pid and log files
    :param argv: the command line
    :param run_dir: where the pid and log files live
    """

    name: str
    argv: Sequence[str]
    run_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        """Return the pid of the running process, or None."""
        try:
            pid = int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def start(self, env: Mapping[str, str], cwd: Path | None = None) -> int:
        """Start the process in its own session unless it already runs; return its pid."""
        running = self.pid()
        if running is not None:
            return running
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as out:
            process = subprocess.Popen(
                list(self.argv), env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        self.pid_file.write_text(str(process.pid))
        log.info("started %s (pid %s), log %s", self.name, process.pid, self.log_file)
        return process.pid

    def stop(self, grace_s: float = 20) -> bool:
        """Stop the process group; return True if something was running."""
        pid = self.pid()
        self.pid_file.unlink(missing_ok=True)
        if pid is None:
            return False
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        _signal_group(pid, signal.SIGKILL)
        return True

    def log_tail(self, chars: int = 3000) -> str:
        """Return the end of the process's log."""
        return self.log_file.read_text(errors="replace")[-chars:] if self.log_file.exists() else ""


def pid_alive(pid: int) -> bool:
    """Return True while process ``pid`` exists (and is not our own reaped zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is not alive
        waited, _ = os.waitpid(pid, os.WNOHANG)
        return waited == 0
    except ChildProcessError:
        return True


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def free_port(avoid: Collection[int] = ()) -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on now.

    :param avoid: ports never to return even when free (e.g. NVFlare's default POC port, which a
        developer's own stack may take later)
    """
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port not in avoid:
            return port
