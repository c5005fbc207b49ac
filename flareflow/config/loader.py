"""Load the pipeline's configuration: YAML merge (default plus one file per job), blame, fingerprint.

``configs/default.yaml`` holds every setting; ``configs/<job>.yaml`` overrides it for one NVFlare
job (``stats``, ``train``, ``shap``), and a manual trigger's overrides go on top of every job. Each
merged result is validated against :class:`~flareflow.config.schema.JobConfig`, then the jobs are
checked against each other (:data:`~flareflow.config.placement.SHARED`). Nothing is guessed: values
are not coerced, and a setting that would be ignored (a stray file, a key only another job reads, an
unknown key) is an error. Every problem in every file is collected into one :class:`ConfigError`, each
blamed on the file that set the bad value (for a check across keys: the topmost file setting one of
them) with its key path, the value and the reason.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from flareflow.config.base import FINDINGS
from flareflow.config.errors import ConfigError, Problem, shorten
from flareflow.config.files import CONFIG_FILES, DEFAULT_FILE, find_config_files, read_config_file
from flareflow.config.placement import (
    SHARED,
    TRIGGER,
    misplaced_in_job_file,
    misplaced_in_overrides,
    unknown_key_reason,
    without,
)
from flareflow.config.schema import JOBS, JobConfig, PipelineConfig, Schedule

__all__ = ["CONFIG_FILES", "DEFAULT_FILE", "ConfigError", "deep_merge", "fingerprint", "load_pipeline_config",
           "read_schedule"]

log = logging.getLogger(__name__)
Layer = tuple[str, Mapping[str, Any]]
_ABSENT = object()
_SHARED_NAMES = {"federation.sites": "sites", "federation.conn_id": "NVFlare connection", "data": "data contract",
                 "warehouse": "warehouse", "schedule": "schedule"}


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``override`` merged in; mappings merge, anything else replaces."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def fingerprint(normalized: Mapping[str, Any]) -> str:
    """Return the sha256 of a normalized config (sorted keys, compact JSON)."""
    canonical = json.dumps(normalized, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def key_path(loc: tuple[Any, ...]) -> str:
    """Return a dotted key path; a key that is empty or holds a dot is quoted (``binary."a.b"``).

    :param loc: the keys (and list indexes) from the top of the config
    """
    return ".".join(json.dumps(p) if isinstance(p, str) and (not p or "." in p) else str(p) for p in loc)


def _lookup(tree: Any, loc: tuple[Any, ...]) -> Any:
    node = tree
    for part in loc:
        in_mapping = isinstance(node, Mapping) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if not (in_mapping or in_list):
            return _ABSENT
        node = node[part]
    return node


def _blame(layers: list[Layer], *keys: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
    """Return the topmost layer setting any of ``keys`` and the first of them it sets (else the lowest layer)."""
    for name, layer in reversed(layers):
        for key in keys:
            if _lookup(layer, key) is not _ABSENT:
                return name, key
    return layers[0][0], keys[0]


def _real_loc(error: Mapping[str, Any], merged: Mapping[str, Any]) -> tuple[Any, ...]:
    """Return an error's location as a key path of the config (without pydantic's internal steps)."""
    node: Any = merged
    loc: list[Any] = []
    parts = [p for p in error["loc"] if p != "[key]"]
    for i, part in enumerate(parts):
        found = _lookup(node, (part,))
        if found is not _ABSENT:
            node = found
            loc.append(part)
        elif error["type"] == "missing" and i == len(parts) - 1:
            loc.append(part)  # the missing key itself
        # else: a union member or validator step, no key of the config
    return tuple(loc)


def _problems(error: Mapping[str, Any], layers: list[Layer], merged: Mapping[str, Any]) -> Iterator[Problem]:
    """Yield the problems one pydantic error stands for, each blamed on the file that set it."""
    loc = _real_loc(error, merged)
    if error["type"] == FINDINGS:  # a check across keys: blame the topmost file setting one of them
        for found in error["ctx"]["findings"]:
            source, at = _blame(layers, *[(*loc, *f.split(".")) for f in found.fields] or [loc])
            value = found.value if found.value is not None else _lookup(merged, at)
            yield Problem(source, key_path(at), found.reason, None if value is _ABSENT else shorten(value))
        return
    source, at = _blame(layers, loc)
    if error["type"] == "missing":
        yield Problem(source, key_path(at), "Field required: a required setting is missing")
        return
    reason = error["msg"]
    if error["type"] == "extra_forbidden":
        reason = unknown_key_reason(at)
    elif error["type"] in ("model_type", "dict_type", "list_type") and error["input"] is None:
        reason = "empty: YAML reads a key with nothing under it as null; give its settings or remove the key"
    yield Problem(source, key_path(at), reason.removeprefix("Value error, "), shorten(error["input"]))


def _validate(layers: list[Layer]) -> tuple[JobConfig | None, list[Problem]]:
    """Merge the layers (lowest first) and validate; return the config, or None and every problem."""
    merged: dict[str, Any] = {}
    for _, layer in layers:
        merged = deep_merge(merged, layer)
    try:
        return JobConfig.model_validate(merged), []
    except ValidationError as err:
        return None, [p for error in err.errors() for p in _problems(error, layers, merged)]


def _leaves(node: Any, prefix: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _leaves(value, (*prefix, key))
    else:
        yield prefix, node


def _same(value: Any) -> str:
    """Return a comparable form of a setting (mapping order never matters)."""
    return "<absent>" if value is _ABSENT else json.dumps(value, sort_keys=True)


def _disagreements(jobs: dict[str, JobConfig], layers: dict[str, list[Layer]]) -> Iterator[Problem]:
    """Yield a problem for each shared setting that a job's file sets otherwise than the other jobs have it.

    The reference is the value of the jobs whose own file does not set it (default.yaml's), else the most
    common one; each job differing from it is blamed on the file that set its value.
    """
    dumps = {job: config.model_dump(mode="json") for job, config in jobs.items()}
    for shared in SHARED:
        root = tuple(shared.split("."))
        values = {job: dict(_leaves(_lookup(dump, root), root)) for job, dump in dumps.items()}
        for leaf in dict.fromkeys(leaf for per_job in values.values() for leaf in per_job):
            by_job = {job: per_job.get(leaf, _ABSENT) for job, per_job in values.items()}
            if len({_same(v) for v in by_job.values()}) < 2:
                continue
            inherited = [job for job in by_job if not _set_by_job_file(layers[job], leaf)] or list(by_job)
            reference = Counter(_same(by_job[job]) for job in inherited).most_common(1)[0][0]
            agreeing = [job for job in by_job if _same(by_job[job]) == reference]
            expected = by_job[agreeing[0]]
            for job in (job for job in by_job if job not in agreeing):
                source, at = _blame(layers[job], leaf)
                reason = (f"every job must use the same {_SHARED_NAMES[shared]}: the {job} job has "
                          f"{_shown(by_job[job])}, {' and '.join(agreeing)} {'have' if len(agreeing) > 1 else 'has'} "
                          f"{_shown(expected)}")
                yield Problem(source, key_path(at), reason, None if by_job[job] is _ABSENT else shorten(by_job[job]))


def _shown(value: Any) -> str:
    return "no such setting" if value is _ABSENT else shorten(value)


def _set_by_job_file(layers: list[Layer], leaf: tuple[str, ...]) -> bool:
    """Return whether a job's own file (not default.yaml, not the trigger) sets ``leaf``."""
    return any(_lookup(layer, leaf) is not _ABSENT for name, layer in layers[1:] if name != TRIGGER)


def load_pipeline_config(config_dir: Path, overrides: Mapping[str, Any] | None = None) -> PipelineConfig:
    """Load, merge and validate the default config and each job's file.

    :param config_dir: the folder holding ``default.yaml`` and ``<job>.yaml``
    :param overrides: settings from a manual trigger, applied on top of every job's file
    :raises ConfigError: listing every problem found, in every file
    """
    config_dir = Path(config_dir)
    paths, problems = find_config_files(config_dir)
    contents: dict[str, dict[str, Any] | None] = {}
    for name in CONFIG_FILES:
        if name in paths:
            contents[name], read = read_config_file(paths[name])
            problems += read
        elif name == DEFAULT_FILE and not (problems and problems[0].file == str(config_dir)):
            problems.append(Problem(str(config_dir / name), "", "file not found"))
    trigger: dict[str, Any] = {}
    if overrides is not None and not isinstance(overrides, Mapping):
        problems.append(Problem(TRIGGER, "", "must be a mapping of config sections", shorten(overrides)))
    elif overrides:
        misplaced = list(misplaced_in_overrides(overrides))
        problems += [Problem(TRIGGER, at, reason, shorten(_lookup(overrides, tuple(at.split(".")))))
                     for at, reason in misplaced]
        trigger = without(overrides, [at for at, _ in misplaced])
    jobs: dict[str, JobConfig] = {}
    layers_of: dict[str, list[Layer]] = {}
    for job in JOBS:
        name = f"{job}.yaml"
        layers: list[Layer] = [(str(paths.get(DEFAULT_FILE, config_dir / DEFAULT_FILE)), contents.get(DEFAULT_FILE))]
        content = contents.get(name)
        if content:
            misplaced = list(misplaced_in_job_file(job, content))
            problems += [Problem(str(paths[name]), at, reason, shorten(_lookup(content, tuple(at.split(".")))))
                         for at, reason in misplaced]
            layers.append((str(paths[name]), without(content, [at for at, _ in misplaced])))
        if layers[0][1] is None or (name in paths and content is None):
            continue  # a file that cannot be read: its problem is reported, the job cannot be validated
        if trigger:
            layers.append((TRIGGER, trigger))
        config, invalid = _validate(layers)
        problems += invalid
        if config is not None:
            jobs[job], layers_of[job] = config, layers
    problems += _disagreements(jobs, layers_of)
    if problems:
        raise ConfigError(problems=_ordered(problems, config_dir))
    normalized = {name: cfg.model_dump(mode="json") for name, cfg in sorted(jobs.items())}
    return PipelineConfig(jobs=jobs, fingerprint=fingerprint(normalized))


def _ordered(problems: list[Problem], config_dir: Path) -> list[Problem]:
    """Return the problems without repeats (default.yaml's are found once per job), file by file."""
    rank = {str(config_dir / name): i for i, name in enumerate(CONFIG_FILES, start=1)}
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: len(rank) + 1 if p.file == TRIGGER else rank.get(p.file, 0))


def read_schedule(config_dir: Path) -> Schedule:
    """Return the schedule from ``default.yaml``, or the built-in one if it cannot be read or is invalid.

    The DAG reads this when its file is parsed: a config problem must never break parsing (the DAG
    would vanish from the UI). The validation task reports the problem with its file and key path.

    :param config_dir: the config folder
    """
    try:
        content, _ = read_config_file(Path(config_dir) / DEFAULT_FILE)
        section = content.get("schedule", {}) if content else {}
        return Schedule.model_validate(section)
    except Exception as err:  # whatever is wrong, the DAG still loads (validate_config says what)
        log.warning("no usable schedule in %s (%s); using the built-in schedule", config_dir, type(err).__name__)
        return Schedule()
