"""The pipeline's configuration: schema, YAML merge (default plus one file per job), fingerprint.

``configs/default.yaml`` holds every setting; ``configs/<job>.yaml`` overrides it for one NVFlare
job (``stats``, ``train``, ``shap``). Each merged result is validated against :class:`JobConfig`.
A bad value fails with :class:`ConfigError` naming the file, the key path and the reason.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fl_tasks.data import COLUMNS

JOBS: tuple[str, ...] = ("stats", "train", "shap")
DEFAULT_FILE = "default.yaml"
SITE_NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]


class ConfigError(ValueError):
    """A config file is missing, unreadable or invalid.

    :param file: the file the bad value comes from
    :param key_path: the dotted key path of the bad value ('' for the whole file)
    :param reason: what is wrong
    """

    def __init__(self, file: str, key_path: str, reason: str) -> None:
        self.file, self.key_path, self.reason = file, key_path, reason
        where = f"{file}: {key_path}" if key_path else file
        super().__init__(f"{where}: {reason}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Federation(_Section):
    sites: list[Annotated[str, Field(pattern=SITE_NAME)]] = Field(min_length=1)
    min_sites: PositiveInt | None = None
    conn_id: str = "nvflare_default"
    gate_timeout_s: PositiveFloat = 120
    task_timeout_s: PositiveFloat = 600
    job_timeout_s: PositiveFloat = 3600
    poll_interval_s: PositiveFloat = 5

    @field_validator("sites")
    @classmethod
    def _unique(cls, sites: list[str]) -> list[str]:
        seen = [s for i, s in enumerate(sites) if s in sites[:i]]
        if seen:
            raise ValueError(f"duplicate sites: {sorted(set(seen))}")
        return sites

    @model_validator(mode="after")
    def _min_sites_fit(self) -> Federation:
        if self.min_sites is not None and self.min_sites > len(self.sites):
            raise ValueError(f"min_sites={self.min_sites} exceeds the {len(self.sites)} configured sites")
        return self

    @property
    def required_sites(self) -> int:
        """Return how many sites must take part in every job."""
        return self.min_sites or len(self.sites)


class Features(_Section):
    numeric: list[str] = Field(default_factory=list)
    binary: dict[str, str] = Field(default_factory=dict)
    categorical: dict[str, list[str]] = Field(default_factory=dict)
    zero_means_missing: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_columns(self) -> Features:
        used = [*self.numeric, *self.binary, *self.categorical]
        if not used:
            raise ValueError("no features configured")
        unknown = sorted(set(used) - set(COLUMNS))
        if unknown:
            raise ValueError(f"features not in the site data: {unknown}; known columns: {list(COLUMNS)}")
        repeated = sorted({c for c in used if used.count(c) > 1})
        if repeated:
            raise ValueError(f"features listed twice: {repeated}")
        stray = sorted(set(self.zero_means_missing) - set(self.numeric))
        if stray:
            raise ValueError(f"zero_means_missing names non-numeric features: {stray}")
        empty = sorted(c for c, cats in self.categorical.items() if not cats)
        if empty:
            raise ValueError(f"categorical features without categories: {empty}")
        return self


class Split(_Section):
    train: PositiveFloat = 0.6
    validation: PositiveFloat = 0.2
    test: PositiveFloat = 0.2

    @model_validator(mode="after")
    def _sums_to_one(self) -> Split:
        if abs(self.train + self.validation + self.test - 1.0) > 1e-9:
            raise ValueError("train + validation + test must sum to 1")
        return self


class Data(_Section):
    file_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+\.csv$")] = "heart.csv"
    label: str = "num"
    label_positive_above: float = 0
    features: Features
    window_months: PositiveInt | None = None
    split: Split = Split()

    @field_validator("file_name")
    @classmethod
    def _inside_folder(cls, name: str) -> str:
        if name.startswith(".") or ".." in name:
            raise ValueError("must be a plain file name inside the site's data folder")
        return name

    @field_validator("label")
    @classmethod
    def _label_known(cls, label: str) -> str:
        if label not in COLUMNS:
            raise ValueError(f"label {label!r} is not a column of the site data")
        return label


class Privacy(_Section):
    min_count: PositiveInt = 10
    min_noise_level: Annotated[float, Field(ge=0, lt=1)] = 0.1
    max_noise_level: Annotated[float, Field(ge=0, lt=1)] = 0.3
    max_bins_percent: Annotated[float, Field(gt=0, le=100)] = 10

    @model_validator(mode="after")
    def _noise_ordered(self) -> Privacy:
        if self.min_noise_level > self.max_noise_level:
            raise ValueError(
                f"min_noise_level {self.min_noise_level} exceeds max_noise_level {self.max_noise_level}"
            )
        return self


class Stats(_Section):
    histogram_bins: Annotated[int, Field(ge=2, le=200)] = 10
    precision: Annotated[int, Field(ge=1, le=12)] = 6


class Training(_Section):
    rounds: Annotated[int, Field(ge=1, le=1000)] = 10
    local_epochs: Annotated[int, Field(ge=1, le=1000)] = 5
    learning_rate: PositiveFloat = 0.01
    alpha: Annotated[float, Field(ge=0)] = 1e-4
    seed: int = 0


class Shap(_Section):
    explainer: Literal["kernel", "permutation"] = "kernel"
    background_size: Annotated[int, Field(ge=1, le=1000)] = 20
    samples: Annotated[int, Field(ge=10, le=100_000)] = 200
    max_rows: PositiveInt | None = None


class MLflow(_Section):
    experiment: Annotated[str, Field(min_length=1)] = "flareflow"
    registered_model: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")] = "flareflow-heart-disease"


class Warehouse(_Section):
    conn_id: str = "flareflow_warehouse"


class Schedule(_Section):
    cron: str = "0 3 1 * *"
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, cron: str) -> str:
        if not croniter.is_valid(cron):
            raise ValueError(f"not a valid cron expression: {cron!r}")
        return cron


class JobConfig(_Section):
    """The merged configuration one NVFlare job runs with."""

    federation: Federation
    data: Data
    privacy: Privacy = Privacy()
    stats: Stats = Stats()
    training: Training = Training()
    shap: Shap = Shap()
    mlflow: MLflow = MLflow()
    warehouse: Warehouse = Warehouse()
    schedule: Schedule = Schedule()


class PipelineConfig(BaseModel):
    """The three job configs of one run and the fingerprint stamped on its outputs."""

    model_config = ConfigDict(frozen=True)

    jobs: dict[str, JobConfig]
    fingerprint: str

    def job(self, name: str) -> JobConfig:
        """Return the merged config of one job."""
        return self.jobs[name]

    def to_dict(self) -> dict[str, Any]:
        """Return the normalized form (JSON-safe), as fingerprinted."""
        return {name: cfg.model_dump(mode="json") for name, cfg in sorted(self.jobs.items())}


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``override`` merged in; mappings merge, anything else replaces."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError(str(path), "", "file not found") from err
    except yaml.YAMLError as err:
        raise ConfigError(str(path), "", f"not valid YAML: {err}") from err
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(str(path), "", f"must be a mapping, got {type(content).__name__}")
    return content


def _has_key(tree: Mapping[str, Any], loc: tuple[Any, ...]) -> bool:
    node: Any = tree
    for part in loc:
        in_mapping = isinstance(node, Mapping) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_mapping or in_list:
            node = node[part]
        else:
            return False
    return True


def _validate(layers: list[tuple[str, Mapping[str, Any]]]) -> JobConfig:
    """Merge the layers (lowest first) and validate, blaming the topmost layer holding a bad key."""
    merged: dict[str, Any] = {}
    for _, layer in layers:
        merged = deep_merge(merged, layer)
    try:
        return JobConfig.model_validate(merged)
    except ValidationError as err:
        first = err.errors()[0]
        loc = tuple(first["loc"])
        # a model-level check points at the section; the key path still names it
        source = next((name for name, layer in reversed(layers) if _has_key(layer, loc)), layers[0][0])
        if first["type"] == "missing":
            source = layers[0][0]
        key_path = ".".join(str(p) for p in loc)
        raise ConfigError(source, key_path, first["msg"].removeprefix("Value error, ")) from err


def fingerprint(normalized: Mapping[str, Any]) -> str:
    """Return the sha256 of a normalized config (sorted keys, compact JSON)."""
    canonical = json.dumps(normalized, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def load_pipeline_config(config_dir: Path, overrides: Mapping[str, Any] | None = None) -> PipelineConfig:
    """Load, merge and validate the default config and each job's file.

    :param config_dir: the folder holding ``default.yaml`` and ``<job>.yaml``
    :param overrides: settings from a manual trigger, applied on top of every job's file
    """
    default_path = config_dir / DEFAULT_FILE
    default = _read_yaml(default_path)
    jobs: dict[str, JobConfig] = {}
    for job in JOBS:
        job_path = config_dir / f"{job}.yaml"
        layers = [(str(default_path), default)]
        if job_path.exists():
            layers.append((str(job_path), _read_yaml(job_path)))
        if overrides:
            layers.append(("trigger params", overrides))
        jobs[job] = _validate(layers)
    sites = {tuple(cfg.federation.sites) for cfg in jobs.values()}
    if len(sites) > 1:
        raise ConfigError(str(config_dir), "federation.sites", "every job must use the same sites")
    normalized = {name: cfg.model_dump(mode="json") for name, cfg in sorted(jobs.items())}
    return PipelineConfig(jobs=jobs, fingerprint=fingerprint(normalized))


def read_schedule(config_dir: Path) -> Schedule:
    """Return the schedule from ``default.yaml``, or the built-in one if the file is unusable.

    The DAG reads this at parse time; a broken file must not break parsing, since the validation
    task reports the problem with its file and key path.
    """
    try:
        return Schedule.model_validate(_read_yaml(config_dir / DEFAULT_FILE).get("schedule", {}))
    except (ConfigError, ValidationError, AttributeError):
        return Schedule()


_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(text: str) -> str:
    """Return ``text`` reduced to characters safe in file and job names."""
    return _SAFE_NAME.sub("_", text).strip("_") or "x"
