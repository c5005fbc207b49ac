"""What every flareflow NVFlare job shares: required sites, the client config file, result files."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nvflare.job_config.api import FedJob

#: written into the job's run folder when a workflow gives up, so the operator can say why
FAILURE_FILE = "flareflow_failure.json"
#: the file each client script reads its settings from, beside the script in the app's custom folder
CLIENT_CONFIG_FILE = "flareflow_client.json"


def require_sites(job: FedJob, sites: Sequence[str]) -> None:
    """Make NVFlare deploy ``job`` only when every one of ``sites`` is there (no silent subset).

    :param job: the job being defined
    :param sites: the sites that must take part
    """
    job.job.min_clients = len(sites)
    job.job.mandatory_clients = list(sites)


def export_job(job_module: Any, root: Path, name: str, sites: Sequence[str], args: Mapping[str, Any]) -> Path:
    """Build a flareflow job and export it, with its client settings, into ``root/<name>``.

    :param job_module: the job's module (``fl_tasks.stats.job`` …) providing ``build_job``
    :param root: the export folder (emptied first)
    :param name: the job name
    :param sites: the sites that take part
    :param args: the other keyword arguments of ``build_job``
    """
    job, settings = job_module.build_job(name=name, sites=sites, **args)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    job.export_job(str(root))
    if settings is not None:
        write_client_config(root / name, settings)
    return root / name


def write_client_config(job_folder: Path, settings: Mapping[str, Any]) -> list[Path]:
    """Write the client settings beside the client script of every site app of an exported job.

    :param job_folder: the exported job folder (holding ``meta.json``)
    :param settings: JSON-safe settings for the client script
    """
    written = []
    for custom in sorted(job_folder.glob("app*/custom")):
        if (custom.parent / "config" / "config_fed_client.json").exists():
            path = custom / CLIENT_CONFIG_FILE
            path.write_text(json.dumps(settings, indent=1))  # key order is feature order: never sort
            written.append(path)
    if not written:
        raise FileNotFoundError(f"no client app with a custom folder in {job_folder}")
    return written


def read_client_config(workspace_root: Path, job_id: str, site: str) -> dict[str, Any]:
    """Return the settings a client script of this job reads, from the site's copy of the job.

    :param workspace_root: the site's NVFlare workspace root
    :param job_id: the running job
    :param site: this site's name
    """
    return json.loads((workspace_root / job_id / f"app_{site}" / "custom" / CLIENT_CONFIG_FILE).read_text())


def site_workspace() -> Path:
    """Return the site's workspace root: NVFlare runs in-process client scripts from there."""
    return Path.cwd()


def client_settings(
    config: Mapping[str, Any], until: str, stats_result: str, **sections: Any
) -> dict[str, Any]:
    """Return what a client script needs: the data section, the run's date bound, global mean/stddev.

    :param config: the merged job config
    :param until: ISO date; sites use records dated before it
    :param stats_result: the federated statistics file of this run
    :param sections: further settings for the script (e.g. ``training``)
    """
    from fl_tasks.contract import Contract
    from fl_tasks.stats.result import read_result

    stats = read_result(stats_result, Contract.from_config(config["data"]).features.columns)
    means = stats["statistics"]["mean"]
    stddevs = stats["statistics"]["stddev"]
    withheld = [f for f in stats["features"]
                if means.get(f, {}).get("global") is None or stddevs.get(f, {}).get("global") is None]
    if withheld:
        raise ValueError(f"no global mean/stddev for features {withheld} in {stats_result}")
    return {
        "data": dict(config["data"]),
        "until": until,
        "means": {f: means[f]["global"] for f in stats["features"]},
        "stddevs": {f: stddevs[f]["global"] for f in stats["features"]},
        **sections,
    }
