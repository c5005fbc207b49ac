"""One-shot provisioning of the containerised NVFlare federation (the ``nvflare-provision`` service).

Run inside the flareflow image with the shared ``nvflare-workspace`` volume mounted. It

1. prepares the NVFlare POC workspace for exactly the sites of ``configs/default.yaml`` (only when it
   is missing or holds other sites, so job history survives a restart);
2. points every client and admin startup kit at the server's container name instead of ``localhost``
   (POC kits assume one host; in Compose each participant is its own container). The kits use mutual
   TLS against the provisioned root CA and do not check host names, and POC kits carry no signatures,
   so only the address changes. NVFlare's own POC Docker mode patches ``fed_client.json`` the same way;
3. moves the server's job and snapshot storage into the server's own kit folder, so the server
   container mounts only that folder;
4. writes each hospital's rows into that hospital's own site folder (``<site>/local/flareflow/``).
   This stands in for each hospital loading its own data: no site container sees another's folder.

Every step is idempotent. Settings (environment):

- ``NVFLARE_POC_WORKSPACE``: the POC workspace in this container (required)
- ``NVFLARE_SERVER_HOST``: the host name clients and admins connect to (default ``nvflare-server``)
- ``NVFLARE_SERVER_STATE_DIR``: where the *server container* keeps its job store (required); it must
  lie inside the server kit as the server container mounts it
- ``NVFLARE_SERVER_KIT_MOUNT``: where the server container mounts its kit (required)
- ``FLAREFLOW_CONFIG_DIR``, ``FLAREFLOW_PROJECT_DIR``: the configs and the project (for the demo's ``data/``)
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import yaml
from nvflare.lighter.utils import update_storage_locations

from flareflow.config import load_pipeline_config
from flareflow.local.poc import ADMIN_USER, NVFlarePOC
from flareflow.local.sites import SiteDataError, write_site_data
from flareflow.local.stack import demo_source
from flareflow.paths import config_dir

log = logging.getLogger("nvflare-provision")

_LOCAL_HOSTS = {"localhost", "127.0.0.1", "0.0.0.0"}


def _provisioned_clients(workspace: Path) -> set[str]:
    """Return the client names of an existing POC workspace (empty when there is none)."""
    project_file = workspace / "project.yml"
    if not project_file.is_file():
        return set()
    project = yaml.safe_load(project_file.read_text()) or {}
    return {p["name"] for p in project.get("participants", []) if p.get("type") == "client"}


def _write_json(path: Path, content: dict) -> None:
    path.write_text(json.dumps(content, indent=2) + "\n")


def point_kits_at(project_dir: Path, server_host: str) -> list[Path]:
    """Replace a local server address in every client and admin kit by ``server_host``; return the files changed."""
    changed = []
    for client_file in sorted(project_dir.glob("*/startup/fed_client.json")):
        content = json.loads(client_file.read_text())
        dirty = False
        for server in content.get("servers", []):
            service = server.get("service", {})
            host, sep, port = str(service.get("target", "")).rpartition(":")
            if sep and host in _LOCAL_HOSTS:
                service["target"] = f"{server_host}:{port}"
                dirty = True
        if dirty:
            _write_json(client_file, content)
            changed.append(client_file)
    for admin_file in sorted(project_dir.glob("*/startup/fed_admin.json")):
        content = json.loads(admin_file.read_text())
        if content.get("admin", {}).get("host") in _LOCAL_HOSTS:
            content["admin"]["host"] = server_host
            _write_json(admin_file, content)
            changed.append(admin_file)
    return changed


def relocate_server_storage(server_kit: Path, kit_mount: Path, state_dir: Path) -> None:
    """Keep the server's job and snapshot storage under its own kit.

    :param server_kit: the server kit as this container sees it
    :param kit_mount: where the server container mounts that kit
    :param state_dir: the storage folder as the server container sees it (inside ``kit_mount``)
    """
    relative = state_dir.relative_to(kit_mount)  # raises if the storage would lie outside the kit
    update_storage_locations(local_dir=str(server_kit / "local"), workspace=str(state_dir))
    for name in ("jobs-storage", "snapshot-storage"):
        (server_kit / relative / name).mkdir(parents=True, exist_ok=True)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    workspace = Path(os.environ["NVFLARE_POC_WORKSPACE"])
    server_host = os.environ.get("NVFLARE_SERVER_HOST", "nvflare-server")
    kit_mount = Path(os.environ["NVFLARE_SERVER_KIT_MOUNT"])
    state_dir = Path(os.environ["NVFLARE_SERVER_STATE_DIR"])
    project = Path(os.environ.get("FLAREFLOW_PROJECT_DIR", "/app"))

    config = load_pipeline_config(config_dir()).job("stats")
    sites = list(config.federation.sites)
    poc = NVFlarePOC(workspace, sites, dict(os.environ))

    if poc.is_prepared() and _provisioned_clients(workspace) == set(sites):
        log.info("POC workspace %s already holds kits for %s", workspace, ", ".join(sites))
    else:
        log.info("preparing the POC workspace %s for %s", workspace, ", ".join(sites))
        poc.prepare()

    for path in point_kits_at(poc.project_dir, server_host):
        log.info("pointed %s at %s", path.relative_to(workspace), server_host)
    relocate_server_storage(poc.project_dir / "server", kit_mount, state_dir)

    try:
        written = write_site_data(demo_source(project), {site: poc.site_workspace(site) for site in sites},
                                  config.data.file_name, config.data.delimiter)
    except SiteDataError as err:
        log.error("%s", err)
        return 1
    for site, path in written.items():
        log.info("site %s: %s", site, path.relative_to(workspace))
    if not (poc.admin_kit / "startup").is_dir():
        log.error("no admin kit for %s at %s", ADMIN_USER, poc.admin_kit)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
