"""A run's config: the config folder with a manual trigger's params, and what is wrong with them.

Airflow lets any key of a trigger's conf through into ``params``: a misspelt param would be silently
ignored, so every key but :data:`PARAMS` is an error.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flareflow.config.errors import ConfigError, Problem, shorten
from flareflow.config.loader import load_pipeline_config
from flareflow.config.placement import TRIGGER
from flareflow.config.schema import JobConfig, PipelineConfig
from flareflow.data_interval import DATA_MONTH_PARAM, parse_month

#: the DAG's params: FedAvg rounds for this run, settings merged over every job's config, the data month
PARAMS: tuple[str, ...] = ("rounds", "config_overrides", DATA_MONTH_PARAM)


def read_trigger_params(params: Mapping[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    """Return the config overrides a manual trigger asked for, and every problem with its params.

    :param params: the run's params (the DAG's, updated with the trigger's conf)
    """
    problems: list[Problem] = []

    def problem(key_path: str, reason: str, value: Any = None) -> None:
        problems.append(Problem(TRIGGER, key_path, reason, None if value is None else shorten(value)))

    for key in params:
        if key not in PARAMS:
            if key in JobConfig.model_fields:
                reason = f"{key} is a config section: pass it inside config_overrides ({{{key}: …}})"
            else:
                near = difflib.get_close_matches(str(key), PARAMS, n=1, cutoff=0.6)
                reason = (f"unknown trigger param: {'did you mean ' + near[0] + '? ' if near else ''}"
                          f"the DAG takes {', '.join(PARAMS[:-1])} and {PARAMS[-1]}")
            problem(str(key), reason)
    overrides: dict[str, Any] = {}
    raw = params.get("config_overrides")
    if isinstance(raw, Mapping):  # checked with the config files (see loader.load_pipeline_config)
        overrides = dict(raw)
    elif raw is not None:
        problem("config_overrides", "must be a mapping of config sections, such as {training: {rounds: 5}}", raw)
    month = params.get(DATA_MONTH_PARAM)
    if month is not None:
        try:
            parse_month(month)
        except ValueError:
            problem(DATA_MONTH_PARAM, "must be a data month YYYY-MM such as 2026-03 (or empty: the run's own)", month)
    rounds = params.get("rounds")
    if rounds is not None and (isinstance(rounds, bool) or not isinstance(rounds, int)):
        problem("rounds", "must be a whole number of FedAvg rounds (or empty: the config's)", rounds)
    elif rounds is not None and isinstance(overrides.get("training", {}), Mapping):
        training = overrides.get("training", {})
        if training.get("rounds", rounds) != rounds:
            problem("rounds", f"config_overrides sets training.rounds to {training['rounds']!r}: give the rounds "
                              "once", rounds)
        overrides["training"] = {**training, "rounds": rounds}
    return overrides, problems


def load_run_config(config_dir: Path, params: Mapping[str, Any]) -> PipelineConfig:
    """Load and validate the config a run uses: the config folder with its trigger's overrides.

    :param config_dir: the config folder
    :param params: the run's params (the DAG's, updated with the trigger's conf)
    :raises ConfigError: listing every problem of the config files and of the params
    """
    overrides, problems = read_trigger_params(params)
    try:
        config = load_pipeline_config(config_dir, overrides)
    except ConfigError as err:
        raise ConfigError(problems=[*err.problems, *problems]) from err
    if problems:
        raise ConfigError(problems=problems)
    return config
