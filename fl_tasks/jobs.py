"""What every flareflow NVFlare job shares: required sites, the client config file, result files."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nvflare.job_config.api import FedJob

#: the file each client script reads its settings from, beside the script in the app's custom folder
CLIENT_CONFIG_FILE = "flareflow_client.json"


def require_sites(job: FedJob, sites: Sequence[str]) -> None:
    """Make NVFlare deploy ``job`` only when every one of ``sites`` is there (no silent subset).

    :param job: the job being defined
    :param sites: the sites that must take part
    """
    job.job.min_clients = len(sites)
    job.job.mandatory_clients = list(sites)


def write_client_config(job_folder: Path, settings: Mapping[str, Any]) -> list[Path]:
    """Write the client settings beside the client script of every site app of an exported job.

    :param job_folder: the exported job folder (holding ``meta.json``)
    :param settings: JSON-safe settings for the client script
    """
    written = []
    for custom in sorted(job_folder.glob("app*/custom")):
        if (custom.parent / "config" / "config_fed_client.json").exists():
            path = custom / CLIENT_CONFIG_FILE
            path.write_text(json.dumps(settings, indent=1, sort_keys=True))
            written.append(path)
    if not written:
        raise FileNotFoundError(f"no client app with a custom folder in {job_folder}")
    return written


def read_client_config(script_file: str) -> dict[str, Any]:
    """Return the settings written beside a client script (call with ``__file__``)."""
    return json.loads(Path(script_file).with_name(CLIENT_CONFIG_FILE).read_text())


def site_workspace(script_file: str) -> Path:
    """Return the site's workspace root for a client script (``<ws>/<job>/app_<site>/custom/x.py``)."""
    return Path(script_file).resolve().parents[3]
