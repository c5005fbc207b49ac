"""The pipeline's configuration: the schema (``schema``) and the YAML loader (``loader``)."""

from __future__ import annotations

from flareflow.config.loader import (
    CONFIG_FILES,
    DEFAULT_FILE,
    ConfigError,
    deep_merge,
    fingerprint,
    load_pipeline_config,
    read_schedule,
)
from flareflow.config.schema import JOBS, JobConfig, PipelineConfig, Schedule

__all__ = [
    "CONFIG_FILES", "DEFAULT_FILE", "JOBS", "ConfigError", "JobConfig", "PipelineConfig", "Schedule",
    "deep_merge",
    "fingerprint", "load_pipeline_config", "read_schedule",
]
