"""flareflow: an Apache Airflow provider for monthly federated learning on NVIDIA FLARE.

Airflow finds it through the ``apache_airflow_provider`` entry point, which names
:func:`get_provider_info`: the ``nvflare`` connection type (with its UI form: the admin startup kit
and username), the hooks, operators and triggers by kind, and the ``airflow flareflow`` commands.
The dashboard page is an Airflow plugin of its own entry point (``flareflow.dashboard.plugin``).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("flareflow")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0.0.0"


def get_provider_info() -> dict[str, Any]:
    """Return the provider's description for Airflow's providers manager (no imports of Airflow here)."""
    return {
        "package-name": "flareflow",
        "name": "flareflow",
        "description": "Federated statistics, training and SHAP on NVIDIA FLARE, orchestrated by Airflow.",
        "versions": [__version__],
        "integrations": [{
            "integration-name": "NVIDIA FLARE",
            "external-doc-url": "https://nvflare.readthedocs.io/",
            "tags": ["software"],
        }],
        "hooks": [{"integration-name": "NVIDIA FLARE", "python-modules": ["flareflow.hooks.nvflare"]}],
        "operators": [{"integration-name": "NVIDIA FLARE",
                       "python-modules": ["flareflow.operators.nvflare", "flareflow.operators.approval"]}],
        "triggers": [{"integration-name": "NVIDIA FLARE", "python-modules": ["flareflow.triggers.nvflare"]}],
        # `airflow flareflow backfill-stale`
        "cli": ["flareflow.cli.definition.get_flareflow_cli_commands"],
        "connection-types": [{
            "connection-type": "nvflare",
            "hook-class-name": "flareflow.hooks.nvflare.NVFlareHook",
            "hook-name": "NVIDIA FLARE",
            # Airflow 3.2+ builds the UI's connection form from these, without importing the hook; the
            # form saves each field under its own name in the connection's extra, where the hook reads it
            "conn-fields": {
                "startup_kit": {
                    "label": "Admin startup kit",
                    "description": "The folder of the NVFlare admin's startup kit (the folder holding startup/)",
                    "schema": {"type": ["string", "null"]},
                },
                "username": {
                    "label": "Admin username",
                    "description": "The admin user of that kit, as named in the project's project.yml",
                    "schema": {"type": ["string", "null"]},
                },
            },
            "ui-field-behaviour": {"hidden-fields": ["host", "schema", "port", "login", "password"]},
        }],
    }
