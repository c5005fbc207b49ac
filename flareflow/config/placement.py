"""Where each setting belongs: which job reads which section, and what every job must agree on.

Worked out from the code that reads the merged configs:

- ``stats`` (``fl_tasks.stats.job``): federation, data, privacy, stats;
- ``train`` (``fl_tasks.train``, ``pipeline.register_model``): federation, data, training, mlflow;
- ``shap`` (``fl_tasks.shap``): federation, data, shap, and ``training.seed``;
- the whole pipeline, from ``default.yaml`` only: warehouse (every step writing to it) and schedule
  (read when the DAG file is parsed).

A job file setting what its job never reads would be silently ignored: it is an error naming where the
setting belongs. So is an unknown key, with the nearest known one.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel

from flareflow.config.schema import JOBS, JobConfig

#: the sections (or single keys, dotted) each job reads
READS: dict[str, tuple[str, ...]] = {
    "stats": ("federation", "data", "privacy", "stats"),
    "train": ("federation", "data", "training", "mlflow"),
    "shap": ("federation", "data", "shap", "training.seed"),
}
#: sections every job and step shares, set in default.yaml only
PIPELINE_WIDE: tuple[str, ...] = ("warehouse", "schedule")
#: settings every job must agree on: one federation, one data contract (its file, columns, window, split),
#: one warehouse and schedule (which only default.yaml and a trigger's overrides may set)
SHARED: tuple[str, ...] = ("federation.sites", "federation.conn_id", "data", *PIPELINE_WIDE)
TRIGGER = "trigger params"


def readers(key: str) -> list[str]:
    """Return the jobs reading a section or a dotted key.

    :param key: a section (``training``) or a dotted key (``training.seed``)
    """
    return [job for job in JOBS if any(key == r or key.startswith(f"{r}.") or r.startswith(f"{key}.")
                                       for r in READS[job])]


def _where(key: str) -> str:
    jobs = readers(key)
    files = " or ".join(f"{job}.yaml" for job in jobs)
    return f"set it in {files} (or in default.yaml for every job)" if jobs else "set it in default.yaml"


def misplaced_in_job_file(job: str, content: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Yield (key path, reason) for each setting of ``<job>.yaml`` that its job never reads.

    :param job: the job the file belongs to
    :param content: the file's content
    """
    sections = set(JobConfig.model_fields)
    for key, value in content.items():
        if key in PIPELINE_WIDE:
            yield key, f"{key} is pipeline-wide, not a {job} job setting: set it in default.yaml"
        elif key in sections and key not in READS[job]:
            partial = [r for r in READS[job] if r.startswith(f"{key}.")]
            if not partial:
                yield key, f"the {job} job does not read {key}: {_where(key)}"
            elif isinstance(value, Mapping):
                for sub in value:
                    if f"{key}.{sub}" not in partial:
                        yield (f"{key}.{sub}", f"the {job} job reads only {', '.join(partial)} of {key}: "
                                               f"{_where(f'{key}.{sub}')}")


def misplaced_in_overrides(overrides: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Yield (key path, reason) for each config override a trigger cannot make.

    :param overrides: the ``config_overrides`` of a manual trigger
    """
    if "schedule" in overrides:
        yield "schedule", "the schedule is read when the DAG file is parsed, not per run: set it in default.yaml"


def without(content: Mapping[str, Any], key_paths: list[str]) -> dict[str, Any]:
    """Return ``content`` without the given keys, so that a misplaced setting is reported only once.

    :param content: a config file's content
    :param key_paths: the dotted keys to leave out
    """
    result = dict(content)
    for key_path in key_paths:
        head, _, rest = key_path.partition(".")
        if not rest:
            result.pop(head, None)
        elif isinstance(result.get(head), Mapping):
            result[head] = without(result[head], [rest])
    return result


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """Return the section model at a key path of a job config, if it is one."""
    model: type[BaseModel] = JobConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return None
        model = field.annotation
    return model


def _all_keys(model: type[BaseModel] = JobConfig, prefix: str = "") -> Iterator[str]:
    for name, field in model.model_fields.items():
        yield f"{prefix}{name}"
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from _all_keys(field.annotation, f"{prefix}{name}.")


def unknown_key_reason(loc: tuple[Any, ...]) -> str:
    """Return why the key at ``loc`` is unknown, and where it (or the key meant) belongs.

    :param loc: the unknown key's path in the job config
    """
    *parent, key = (str(p) for p in loc)
    model = _model_at(tuple(parent))
    known = list(model.model_fields) if model else []
    where = ".".join(parent) or "the config"
    elsewhere = [k for k in _all_keys() if k.rsplit(".", 1)[-1] == key and k != ".".join((*parent, key))]
    if elsewhere:
        return f"unknown key in {where}: {key} belongs in {' or '.join(k.rsplit('.', 1)[0] for k in elsewhere)}"
    near = difflib.get_close_matches(key, known, n=1, cutoff=0.7)
    if not near:  # a key of another section, misspelt (or in an older shape, e.g. data.label_positive_above)
        near = difflib.get_close_matches(key, [k.rsplit(".", 1)[-1] for k in _all_keys()], n=1, cutoff=0.8)
        near = [k for k in _all_keys() if k.rsplit(".", 1)[-1] in near][:1]
    near = near or [k for k in known if len(key) >= 4 and (key in k or k in key)][:1]  # epochs: local_epochs
    hint = f"did you mean {near[0]}? " if near else ""
    return f"unknown key in {where}: {hint}{where} takes {', '.join(known)}"
