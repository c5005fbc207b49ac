"""A provisioned (secure, mutual TLS) NVFlare federation on localhost, for the secure-mode tests.

Unlike the POC stack, this goes the way a real deployment does: a ``project.yml`` names the server,
the hospitals and one project admin; ``nvflare provision`` makes each of them a startup kit with its
own certificate signed by the project's root CA; every participant runs its kit's own
``startup/sub_start.sh``; each hospital's rows lie in its own kit (``local/flareflow/``). Here all of
it runs on localhost, on free ports, as child processes of the test, each in its own process group.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml
from nvflare.lighter.utils import update_storage_locations

from flareflow.hooks.nvflare import NVFlareUnavailable, SitesMissing, open_session, wait_for_sites
from flareflow.local import processes
from flareflow.local.sites import DataSource, write_site_data

log = logging.getLogger(__name__)

PROJECT = "flareflow-secure"
SERVER = "localhost"  # the server's name is the host name in its certificate and in every kit
ADMIN = "airflow@flareflow.test"  # the project admin the Airflow connection logs in as
_RESERVED_PORTS = {8002, 8003}  # the POC stacks' ports: never ours


def free_port() -> int:
    """Return a free TCP port on localhost other than the POC stacks' ports."""
    return processes.free_port(avoid=_RESERVED_PORTS)


def project_yml(sites: Sequence[str], fed_learn_port: int, admin_port: int) -> dict[str, Any]:
    """Return the NVFlare project: the server on localhost, one client per hospital, one project admin.

    :param sites: the hospitals, named as in ``federation.sites``
    :param fed_learn_port: the port the hospitals connect to
    :param admin_port: the port the admin (the Airflow connection) connects to
    """
    org = "flareflow"
    return {
        "api_version": 3,
        "name": PROJECT,
        "description": "flareflow secure-mode test federation",
        "connection_security": "mtls",  # every participant shows a certificate of the project's CA
        "participants": [
            {"name": SERVER, "type": "server", "org": org, "fed_learn_port": fed_learn_port,
             "admin_port": admin_port},
            *({"name": site, "type": "client", "org": org} for site in sites),
            {"name": ADMIN, "type": "admin", "org": org, "role": "project_admin"},
        ],
        "builders": [
            {"path": "nvflare.lighter.impl.workspace.WorkspaceBuilder"},
            {"path": "nvflare.lighter.impl.static_file.StaticFileBuilder", "args": {"config_folder": "config"}},
            {"path": "nvflare.lighter.impl.cert.CertBuilder"},
            {"path": "nvflare.lighter.impl.signature.SignatureBuilder"},
        ],
    }


@dataclass
class ProvisionedFederation:
    """A provisioned project under ``root``: its kits and the processes started from them.

    :param root: the folder holding ``project.yml``, the provisioned workspace and the logs
    :param sites: the hospitals
    :param env: the environment of ``nvflare provision`` and of every participant
    """

    root: Path
    sites: list[str]
    env: dict[str, str]
    fed_learn_port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def kits(self) -> Path:
        """Return the folder of the startup kits (``<workspace>/<project>/prod_00``)."""
        return self.root / "workspace" / PROJECT / "prod_00"

    def kit(self, name: str) -> Path:
        """Return the startup kit (and workspace root) of one participant."""
        return self.kits / name

    @property
    def admin_kit(self) -> Path:
        return self.kit(ADMIN)

    def connection(self) -> dict[str, Any]:
        """Return the Airflow connection (as for ``AIRFLOW_CONN_<ID>``) of this project's admin kit."""
        return {"conn_type": "nvflare", "extra": {"startup_kit": str(self.admin_kit), "username": ADMIN}}

    def provision(self) -> None:
        """Write ``project.yml`` and run ``nvflare provision`` on it; keep the server's state in its kit."""
        while self.admin_port == self.fed_learn_port:  # two free-port probes may return the same port
            self.admin_port = free_port()
        self.root.mkdir(parents=True, exist_ok=True)
        project_file = self.root / "project.yml"
        project_file.write_text(yaml.safe_dump(project_yml(self.sites, self.fed_learn_port, self.admin_port),
                                               sort_keys=False))
        result = subprocess.run(
            [str(Path(sys.executable).with_name("nvflare")), "provision", "-p", str(project_file),
             "-w", str(self.root / "workspace"), "--force"],
            env=self.env, cwd=self.root, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300,
        )
        if result.returncode != 0:
            raise RuntimeError(f"nvflare provision failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        # the default job and snapshot store is /tmp/nvflare/…, shared by every server on the machine
        server_kit = self.kit(SERVER)
        update_storage_locations(local_dir=str(server_kit / "local"), workspace=str(server_kit / "state"))

    def write_data(self, source: DataSource, file_name: str) -> dict[str, Path]:
        """Write each hospital's rows into its own kit (``<kit>/local/flareflow/<file_name>``)."""
        return write_site_data(source, {site: self.kit(site) for site in self.sites}, file_name)

    def _start(self, name: str) -> None:
        """Run a participant's own ``startup/sub_start.sh --once`` in a new process group."""
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        env = {**self.env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{self.env.get('PATH', '')}"}
        with (logs / f"{name}.log").open("ab") as out:
            self.processes[name] = subprocess.Popen(
                ["bash", str(self.kit(name) / "startup" / "sub_start.sh"), "--once"], env=env,
                cwd=self.kit(name), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        log.info("started %s (pid %s)", name, self.processes[name].pid)

    def start(self, timeout_s: float = 180) -> None:
        """Start the server, then every hospital; return once all of them are connected."""
        self._start(SERVER)
        for site in self.sites:
            self._start(site)
        try:
            session = open_session(str(self.admin_kit), ADMIN, attempts=8)
            try:
                wait_for_sites(session, self.sites, timeout_s=timeout_s)
            finally:
                session.close()
        except (NVFlareUnavailable, SitesMissing) as err:
            raise RuntimeError(f"the provisioned federation did not come up: {err}\n"
                               f"server log:\n{self.log_tail(SERVER)}") from err

    def log_tail(self, name: str, chars: int = 3000) -> str:
        """Return the end of a participant's log."""
        path = self.root / "logs" / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self, grace_s: float = 15) -> None:
        """End every process started here and the job processes they spawned (their own sessions)."""
        started = [process for process in self.processes.values() if process.poll() is None]
        family: list[psutil.Process] = []
        for process in started:
            try:
                family += [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
        for member in family:
            _signal(member, signal.SIGTERM)
        _, alive = psutil.wait_procs(family, timeout=grace_s)
        for member in alive:
            _signal(member, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=grace_s)
        for process in self.processes.values():
            process.wait(timeout=grace_s)
        self.processes.clear()


def _signal(process: psutil.Process, sig: int) -> None:
    with suppress(psutil.NoSuchProcess):
        process.send_signal(sig)


@contextmanager
def provisioned_federation(
    root: Path, sites: Sequence[str], source: DataSource, file_name: str, env: Mapping[str, str]
) -> Iterator[ProvisionedFederation]:
    """Provision a project, place the hospitals' data, start it; stop everything afterwards.

    :param root: an empty folder for the project
    :param sites: the hospitals
    :param source: the multi-hospital file (each configured site must have rows in it)
    :param file_name: the data file name the jobs read (``data.file_name``)
    :param env: the environment of the NVFlare processes
    """
    federation = ProvisionedFederation(root=root, sites=list(sites), env=dict(env))
    federation.provision()
    federation.write_data(source, file_name)
    try:
        federation.start()
        yield federation
    finally:
        federation.stop()
