"""Load the pipeline's configuration: YAML merge (default plus one file per job), blame, fingerprint.

``configs/default.yaml`` holds every setting; ``configs/<job>.yaml`` overrides it for one NVFlare
job (``stats``, ``train``, ``shap``). Each merged result is validated against
:class:`~flareflow.config.schema.JobConfig`. A bad value fails with :class:`ConfigError` naming the
file, the key path and the reason. Nothing is guessed: values are not coerced, a duplicate YAML key or
a stray ``*.yaml`` (a misspelt job file) is an error, and a check across keys blames the file that set
one of them.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from flareflow.config.base import FINDINGS
from flareflow.config.schema import JOBS, JobConfig, PipelineConfig, Schedule

DEFAULT_FILE = "default.yaml"
CONFIG_FILES: tuple[str, ...] = (DEFAULT_FILE, *(f"{job}.yaml" for job in JOBS))
_STR_TAG, _MERGE_TAG = "tag:yaml.org,2002:str", "tag:yaml.org,2002:merge"


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

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Build a mapping whose keys are their text as written: every key of a config is a name.

        YAML 1.1 reads a key ``no``, ``on`` or ``1`` as a boolean or a number; a column called ``no``
        stays ``"no"``.
        """
        node.value = [(_as_text(key), value) for key, value in node.value]
        return super().construct_mapping(node, deep=deep)

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


def _as_text(key: yaml.Node) -> yaml.Node:
    if isinstance(key, yaml.ScalarNode) and key.tag not in (_STR_TAG, _MERGE_TAG):
        return yaml.ScalarNode(_STR_TAG, key.value, key.start_mark, key.end_mark)
    return key


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


def key_path(loc: tuple[Any, ...]) -> str:
    """Return a dotted key path; a key that is empty or holds a dot is quoted (``binary."a.b"``)."""
    return ".".join(json.dumps(p) if isinstance(p, str) and (not p or "." in p) else str(p) for p in loc)


def _validate(layers: list[tuple[str, Mapping[str, Any]]]) -> JobConfig:
    """Merge the layers (lowest first) and validate, blaming the topmost layer holding a bad key."""
    merged: dict[str, Any] = {}
    for _, layer in layers:
        merged = deep_merge(merged, layer)
    try:
        return JobConfig.model_validate(merged)
    except ValidationError as err:
        first = err.errors()[0]
        loc = tuple(p for p in first["loc"] if p != "[key]")
        reason = first["msg"].removeprefix("Value error, ")
        fields: tuple[str, ...] = ()
        if first["type"] == FINDINGS:  # a cross-field check names the keys involved (see config.base)
            found = first["ctx"]["findings"][0]
            fields, reason = found.fields, found.reason
        source, loc = _blame(layers, *[(*loc, *field.split(".")) for field in fields] or [loc])
        raise ConfigError(source, key_path(loc), reason) from err


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
