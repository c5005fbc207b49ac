"""flareflow as an Airflow provider: its provider info, and what Airflow's own code makes of it.

Fast (no federation): the provider info is validated against Airflow's schema, the UI's connection
form is read the way the api-server serves it, and ``airflow providers list`` runs as a user runs it.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from importlib.resources import files
from pathlib import Path

import jsonschema

import flareflow
from flareflow import get_provider_info
from flareflow.hooks.nvflare import NVFlareHook


def test_provider_info_passes_airflows_schema_and_names_importable_modules() -> None:
    info = get_provider_info()
    schema = json.loads((files("airflow") / "provider_info.schema.json").read_text())
    jsonschema.validate(info, schema)
    assert info["package-name"] == "flareflow" and info["versions"] == [flareflow.__version__]
    for kind in ("hooks", "operators", "triggers"):
        for entry in info[kind]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
    (conn,) = info["connection-types"]
    assert conn["connection-type"] == NVFlareHook.conn_type == "nvflare"
    assert conn["hook-class-name"] == f"{NVFlareHook.__module__}.{NVFlareHook.__qualname__}"
    assert conn["hook-name"] == NVFlareHook.hook_name
    assert set(conn["conn-fields"]) == {"startup_kit", "username"}  # the extra fields NVFlareHook reads


def test_the_entry_point_names_get_provider_info() -> None:
    (point,) = [p for p in entry_points(group="apache_airflow_provider") if p.value.startswith("flareflow")]
    assert point.load() is get_provider_info


def test_the_ui_offers_the_nvflare_connection_form() -> None:
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
    from airflow.sdk import Connection

    (meta,) = [m for m in HookMetaService.hook_meta_data() if m.connection_type == "nvflare"]
    assert (meta.hook_class_name, meta.hook_name) == ("flareflow.hooks.nvflare.NVFlareHook", "NVIDIA FLARE")
    assert {name: field["schema"]["title"] for name, field in meta.extra_fields.items()} == {
        "startup_kit": "Admin startup kit", "username": "Admin username"}
    standard = meta.standard_fields
    assert all(field.hidden for field in (standard.host, standard.port, standard.login, standard.password,
                                          standard.url_schema))
    hook = Connection(conn_id="nvflare_form", conn_type="nvflare").get_hook()
    assert isinstance(hook, NVFlareHook) and hook.nvflare_conn_id == "nvflare_form"


def test_airflow_providers_list_shows_flareflow(tmp_path: Path) -> None:
    airflow = Path(sys.executable).with_name("airflow")
    result = subprocess.run([str(airflow), "providers", "list", "--output", "json"], capture_output=True, text=True,
                            env={**os.environ, "AIRFLOW_HOME": str(tmp_path)}, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    listed = {entry["package_name"]: entry for entry in json.loads(result.stdout)}
    assert listed["flareflow"]["version"] == flareflow.__version__
    assert "NVIDIA FLARE" in listed["flareflow"]["description"]
