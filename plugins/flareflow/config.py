"""The pipeline's configuration: schema, YAML merge (default plus one file per job), fingerprint.

``configs/default.yaml`` holds every setting; ``configs/<job>.yaml`` overrides it for one NVFlare
job (``stats``, ``train``, ``shap``). Each merged result is validated against :class:`JobConfig`.
A bad value fails with :class:`ConfigError` naming the file, the key path and the reason. Nothing
is guessed: values are not coerced, a duplicate YAML key or a stray ``*.yaml`` (a misspelt job file)
is an error, and a check across keys blames the file that set one of them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from fl_tasks.columns import COLUMNS

JOBS: tuple[str, ...] = ("stats", "train", "shap")
DEFAULT_FILE = "default.yaml"
CONFIG_FILES: tuple[str, ...] = (DEFAULT_FILE, *(f"{job}.yaml" for job in JOBS))
SITE_NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"
#: Columns of the site data holding numbers: the only ones usable as numeric features or label.
NUMERIC_COLUMNS: tuple[str, ...] = ("id", "age", "trestbps", "chol", "thalch", "oldpeak", "ca", "num")

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Identifier = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]


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


def _error_at(reason: str, *fields: str) -> PydanticCustomError:
    """Return a validation error about ``fields`` (dotted paths below the model checked), preferred first.

    :func:`_validate` reports it at the first of them set by the topmost file setting any of them.
    """
    return PydanticCustomError("config", reason, {"fields": fields})


class _Section(BaseModel):
    # strict: no coercion (true is no 1, "10" is no 10); an int is still a valid float
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Federation(_Section):
    sites: list[Annotated[str, Field(pattern=SITE_NAME)]] = Field(min_length=1)
    min_sites: PositiveInt | None = None
    conn_id: Identifier = "nvflare_default"
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
            raise _error_at(f"min_sites={self.min_sites} exceeds the {len(self.sites)} configured sites",
                            "min_sites", "sites")
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

    @field_validator("numeric")
    @classmethod
    def _numeric_columns(cls, numeric: list[str]) -> list[str]:
        for column in numeric:
            if column not in NUMERIC_COLUMNS:
                what = "a column without numbers" if column in COLUMNS else "not in the site data"
                raise ValueError(f"numeric feature {column!r} is {what}; numeric columns: {list(NUMERIC_COLUMNS)}")
        return numeric

    @field_validator("binary", "categorical")
    @classmethod
    def _known_columns(cls, features: dict[str, Any]) -> dict[str, Any]:
        for column, spec in features.items():  # spec: a binary's value for 1, or a categorical's categories
            if column not in COLUMNS:
                raise _error_at(f"feature {column!r} not in the site data; known columns: {list(COLUMNS)}", column)
            if spec == []:
                raise _error_at(f"categorical feature {column!r} without categories", column)
            if isinstance(spec, list) and len(set(spec)) < len(spec):
                raise _error_at(f"a category of {column!r} listed twice: {spec}", column)
        return features

    @model_validator(mode="after")
    def _consistent(self) -> Features:
        kinds = {"numeric": self.numeric, "binary": list(self.binary), "categorical": list(self.categorical)}
        used = [c for columns in kinds.values() for c in columns]
        if not used:
            raise _error_at("no features configured", *kinds)
        repeated = sorted({c for c in used if used.count(c) > 1})
        if repeated:
            raise _error_at(f"features listed twice: {repeated}",
                            *(kind for kind, columns in kinds.items() if set(columns) & set(repeated)))
        stray = sorted(set(self.zero_means_missing) - set(self.numeric))
        if stray:
            raise _error_at(f"zero_means_missing names non-numeric features: {stray}",
                            "zero_means_missing", "numeric")
        return self


class Split(_Section):
    train: PositiveFloat = 0.6
    validation: PositiveFloat = 0.2
    test: PositiveFloat = 0.2

    @model_validator(mode="after")
    def _sums_to_one(self) -> Split:
        if abs(self.train + self.validation + self.test - 1.0) > 1e-9:
            raise _error_at("train + validation + test must sum to 1", "train", "validation", "test")
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
    def _label_numeric(cls, label: str) -> str:
        if label not in COLUMNS:
            raise ValueError(f"label {label!r} is not a column of the site data")
        if label not in NUMERIC_COLUMNS:
            raise ValueError(f"label {label!r} is not a numeric column; those are {list(NUMERIC_COLUMNS)}")
        return label

    @model_validator(mode="after")
    def _label_not_a_feature(self) -> Data:
        for kind in ("numeric", "binary", "categorical"):
            if self.label in getattr(self.features, kind):
                raise _error_at(f"the label {self.label!r} is also a {kind} feature", f"features.{kind}", "label")
        return self


class Privacy(_Section):
    min_count: PositiveInt = 10
    min_noise_level: Annotated[float, Field(ge=0, lt=1)] = 0.1
    max_noise_level: Annotated[float, Field(ge=0, lt=1)] = 0.3
    max_bins_percent: Annotated[float, Field(gt=0, le=100)] = 10

    @model_validator(mode="after")
    def _noise_ordered(self) -> Privacy:
        if self.min_noise_level > self.max_noise_level:
            raise _error_at(f"min_noise_level {self.min_noise_level} exceeds max_noise_level {self.max_noise_level}",
                            "min_noise_level", "max_noise_level")
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
    registered_model: Identifier = "flareflow-heart-disease"
    #: a new version becomes champion when its validation AUC is at least the champion's minus this
    champion_tolerance: Annotated[float, Field(ge=0, lt=1)] = 0.01


class Warehouse(_Section):
    conn_id: Identifier = "flareflow_warehouse"


class Schedule(_Section):
    cron: str = "0 3 1 * *"
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, cron: str) -> str:
        if not croniter.is_valid(cron):
            raise ValueError(f"not a valid cron expression: {cron!r}")
        return cron

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, name: str) -> str:
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as err:
            raise ValueError(f"not an IANA timezone (such as UTC or Europe/Berlin): {name!r}") from err
        return name


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


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader rejecting a key given twice in one mapping (PyYAML would keep the last).

    Read from an open file, so that ``self.name`` is the file's path.
    """

    def construct_document(self, node: yaml.Node) -> Any:
        """Check the document for duplicate keys, then build it."""
        stack: list[tuple[yaml.Node, tuple[str, ...]]] = [(node, ())]
        visited: set[int] = set()  # an alias repeats a node (or nests it in itself): check it once
        while stack:
            current, path = stack.pop()
            if id(current) in visited:
                continue
            visited.add(id(current))
            if isinstance(current, yaml.SequenceNode):
                stack.extend((item, (*path, str(i))) for i, item in enumerate(current.value))
            elif isinstance(current, yaml.MappingNode):
                seen: set[str] = set()
                for key_node, value_node in current.value:
                    key = str(key_node.value)
                    if key in seen:
                        line = key_node.start_mark.line + 1
                        raise ConfigError(self.name, ".".join((*path, key)), f"duplicate key (line {line})")
                    seen.add(key)
                    stack.append((value_node, (*path, key)))
        return super().construct_document(node)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        with path.open(encoding="utf-8") as stream:
            content = yaml.load(stream, Loader=_UniqueKeyLoader)
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
        if not (in_mapping or in_list):
            return False
        node = node[part]
    return True


def _blame(layers: list[tuple[str, Mapping[str, Any]]], *keys: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
    """Return the topmost layer setting any of ``keys`` and the first of them it sets (else the lowest layer)."""
    for name, layer in reversed(layers):
        for key in keys:
            if _has_key(layer, key):
                return name, key
    return layers[0][0], keys[0]


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
        # a cross-field check (see _error_at) names the keys involved; others fail at the bad key itself
        fields = first.get("ctx", {}).get("fields", ()) if first["type"] == "config" else ()
        source, loc = _blame(layers, *[(*loc, *field.split(".")) for field in fields] or [loc])
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
    stray = sorted(p.name for p in config_dir.glob("*.y*ml") if p.name not in CONFIG_FILES)
    if stray:  # most likely a misspelt job file, whose settings would be silently ignored
        raise ConfigError(str(config_dir / stray[0]), "", f"not a config file; expected one of {list(CONFIG_FILES)}")
    default_path = config_dir / DEFAULT_FILE
    default = _read_yaml(default_path)
    jobs: dict[str, JobConfig] = {}
    sites_from: dict[str, str] = {}
    for job in JOBS:
        job_path = config_dir / f"{job}.yaml"
        layers = [(str(default_path), default)]
        if job_path.exists():
            layers.append((str(job_path), _read_yaml(job_path)))
        if overrides:
            layers.append(("trigger params", overrides))
        jobs[job] = _validate(layers)
        sites_from[job] = _blame(layers, ("federation", "sites"))[0]
    # compare with a job taking its sites from default.yaml; blame the file that changed them
    reference = min(JOBS, key=lambda job: sites_from[job] != str(default_path))
    for job in JOBS:
        sites, expected = jobs[job].federation.sites, jobs[reference].federation.sites
        if sites != expected:
            raise ConfigError(sites_from[job], "federation.sites",
                              f"every job must use the same sites: {job} has {sites}, {reference} {expected}")
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
