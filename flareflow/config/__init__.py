"""The pipeline's configuration: the schema (``schema``, the data contract in ``contract``) and the loader.

``load_pipeline_config`` reads a config folder into a :class:`PipelineConfig` or raises one
:class:`ConfigError` listing every problem; ``read_schedule`` never raises (the DAG file calls it).
"""

from __future__ import annotations

from flareflow.config.errors import ConfigError, Problem
from flareflow.config.files import CONFIG_FILES, DEFAULT_FILE
from flareflow.config.loader import deep_merge, fingerprint, load_pipeline_config, read_schedule
from flareflow.config.schema import JOBS, JobConfig, PipelineConfig, Schedule
from flareflow.config.trigger import PARAMS, load_run_config, read_trigger_params

__all__ = [
    "CONFIG_FILES", "DEFAULT_FILE", "JOBS", "PARAMS", "ConfigError", "JobConfig", "PipelineConfig", "Problem",
    "Schedule", "deep_merge", "fingerprint", "load_pipeline_config", "load_run_config", "read_schedule",
    "read_trigger_params",
]
