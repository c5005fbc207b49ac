"""Where a run's files go: job exports, downloaded results, the dashboard."""

from __future__ import annotations

import os
import re
from pathlib import Path

WORK_DIR_ENV = "FLAREFLOW_WORK_DIR"
CONFIG_DIR_ENV = "FLAREFLOW_CONFIG_DIR"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(text: str) -> str:
    """Return ``text`` reduced to characters safe in file and job names."""
    return _SAFE_NAME.sub("_", text).strip("_") or "x"


def work_root() -> Path:
    """Return the root of flareflow's working files (``FLAREFLOW_WORK_DIR``, else under AIRFLOW_HOME)."""
    configured = os.environ.get(WORK_DIR_ENV)
    return Path(configured) if configured else Path(os.environ.get("AIRFLOW_HOME", ".")) / "flareflow"


def task_dir(dag_id: str, run_id: str, task_id: str) -> Path:
    """Return the folder of one task's job export and downloaded result."""
    return work_root() / safe_name(dag_id) / safe_name(run_id) / safe_name(task_id)


def dashboard_file() -> Path:
    """Return the path of the rendered dashboard."""
    return work_root() / "dashboard" / "index.html"


def config_dir() -> Path:
    """Return the folder of the YAML configs (``FLAREFLOW_CONFIG_DIR``, else ``configs/`` of the project)."""
    configured = os.environ.get(CONFIG_DIR_ENV)
    return Path(configured) if configured else Path(__file__).resolve().parents[1] / "configs"
