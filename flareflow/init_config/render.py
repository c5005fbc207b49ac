"""Write the drafted config as commented YAML: ``default.yaml`` and one override file per job.

Sections other than ``federation``, ``data`` and ``mlflow`` hold the schema's defaults, so a draft
always carries every setting the schema knows, commented where the meaning is not obvious.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import BaseModel

from flareflow.config.schema import JobConfig
from flareflow.init_config.draft import Draft

COMMENT_COLUMN = 36
MAX_WIDTH = 110
_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_ ./()+-]*")

SECTION_NOTES = {
    "federation": "the hospitals; each is an NVFlare client of this name",
    "data": "the data contract: what each hospital's file must hold, checked there",
    "privacy": "no statistic resting on fewer than min_count records leaves a hospital",
    "training": "federated SGD logistic regression, FedAvg across the hospitals",
    "shap": "federated SHAP: each hospital explains the global model on its own records",
    "mlflow": "where runs are tracked and the model is registered",
    "schedule": "when the monthly run starts; each run covers the previous month",
}
KEY_NOTES = {
    "federation.min_sites": "null: every site must take part",
    "federation.conn_id": "Airflow connection to the NVFlare admin startup kit",
    "federation.gate_timeout_s": "how long to wait for the configured sites to be connected",
    "federation.task_timeout_s": "how long a controller waits for each site's result",
    "federation.job_timeout_s": "how long the operator follows a job before aborting it",
    "data.file_name": "each hospital's file, in its own data folder",
    "data.delimiter": "the file's field separator",
    "data.id_column": "null: no record id (duplicated ids fail the data check)",
    "data.date_column": "null: every run uses every record",
    "data.date_format": "null: ISO 8601 (2026-03-14)",
    "data.features.numeric": "numbers, used as they are",
    "data.features.zero_means_missing": "numeric, where 0 records a missing value",
    "data.features.binary": "column: the value that means 1",
    "data.features.categorical": "column: its categories, one 0/1 feature each",
    "data.window_months": "null: every record dated before the run's data interval ends",
    "privacy.min_count": "a site's statistic from fewer records is withheld",
    "privacy.min_noise_level": "relative noise added to each site's min and max",
    "privacy.max_bins_percent": "a histogram may have at most this % of its count as bins",
    "training.rounds": "FedAvg rounds",
    "training.local_epochs": "full passes over a site's training split per round",
    "training.seed": "also the seed of every site's train/validation/test split",
    "mlflow.champion_tolerance": "the champion alias moves to a version this close in validation AUC",
    "schedule.cron": "03:00 UTC on the 1st",
}
JOB_FILES = {
    "stats": ("federated statistics", "stats", {"histogram_bins": 10}),
    "train": ("federated training", "training", {"rounds": 10, "local_epochs": 5}),
    "shap": ("federated SHAP", "shap", {"background_size": 20}),
}


def scalar(value: Any) -> str:
    """Return a YAML scalar that reads back as ``value`` (strings quoted only when they must be).

    :param value: a string, number, boolean or None
    """
    if isinstance(value, str):
        plain = _PLAIN.fullmatch(value) and value == value.strip() and yaml.safe_load(value) == value
        return value if plain else json.dumps(value, ensure_ascii=False)
    return yaml.safe_dump(value).splitlines()[0]  # YAML's own spelling: 1e-05 reads back only as 1.0e-05


def _flow(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{scalar(k)}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return scalar(value)


def _line(indent: int, text: str, note: str | None) -> str:
    """Return a YAML line with its note as a comment beside it, or above it when the line would run long."""
    line = " " * indent + text
    if not note:
        return line
    note = " ".join(note.split())  # a comment stays on its line
    beside = f"{line.ljust(COMMENT_COLUMN - 1)} # {note}" if len(line) < COMMENT_COLUMN - 1 else f"{line}  # {note}"
    return beside if len(beside) <= MAX_WIDTH else f"{' ' * indent}# {note}\n{line}"


def _block(mapping: Mapping[str, Any], path: str, indent: int, notes: Mapping[str, str],
           flat: tuple[str, ...]) -> list[str]:
    """Render a mapping in block style; values under a path in ``flat`` are written in flow style."""
    lines = []
    for key, value in mapping.items():
        here = f"{path}.{key}" if path else str(key)
        note = notes.get(here)
        if isinstance(value, Mapping) and value and here not in flat:
            lines.append(_line(indent, f"{scalar(key)}:", note))
            lines += _block(value, here, indent + 2, notes, flat)
        else:  # a list's items are named in notes of their own, written above it
            items = value if isinstance(value, list) else []
            lines += [f"{' ' * indent}# {item}: {notes[f'{here}.{item}']}" for item in items
                      if f"{here}.{item}" in notes]
            lines.append(_line(indent, f"{scalar(key)}: {_flow(value)}", note))
    return lines


def _defaults(section: str) -> dict[str, Any] | None:
    default = JobConfig.model_fields[section].default
    return default.model_dump(mode="json") if isinstance(default, BaseModel) else None


def default_yaml(draft: Draft, source: str) -> str:
    """Return the text of ``default.yaml`` for a draft.

    :param draft: the drafted sites and data section
    :param source: what the draft was made from (named in the header)
    """
    notes = {**KEY_NOTES, **{f"data.{key}": note for key, note in draft.notes.items()}}
    hospitals = "; ".join(f"{', '.join(names)} -> {site}" for site, names in draft.hospitals.items())
    notes["federation.sites"] = f"from the site column: {hospitals}"
    sections: dict[str, Any] = {}
    for section in JobConfig.model_fields:
        if section == "federation":  # its only required setting is the sites
            sections[section] = JobConfig.model_fields[section].annotation(sites=draft.sites).model_dump(mode="json")
        elif section == "data":
            sections[section] = draft.data
        elif section == "mlflow":
            sections[section] = {**(_defaults(section) or {}), "experiment": f"flareflow-{draft.name}",
                                 "registered_model": f"flareflow-{draft.name}"}
        elif (defaults := _defaults(section)) is not None:
            sections[section] = defaults
    lines = [f"# flareflow: the settings every job starts from, drafted by `flareflow init-config` from {source}.",
             "# Read every comment; configs/<job>.yaml overrides these settings for one job."]
    flat = ("data.split", *(f"data.features.categorical.{c}" for c in draft.data["features"]["categorical"]))
    for section, values in sections.items():
        lines += ["", _line(0, f"{section}:", SECTION_NOTES.get(section))]
        if section == "data" and draft.left_out:
            left = ", ".join(f"{name} ({why})" for name, why in draft.left_out)
            lines.append(f"  # left out: {left}")
        lines += _block(values, section, 2, notes, flat)
    return "\n".join(lines) + "\n"


def job_yaml(job: str) -> str:
    """Return the text of a job's override file: comments only, so default.yaml decides until you edit it.

    :param job: ``stats``, ``train`` or ``shap``
    """
    what, section, example = JOB_FILES[job]
    lines = [f"# {what}: settings here override default.yaml for this job only, for example:",
             f"# {section}:", *(f"#   {key}: {scalar(value)}" for key, value in example.items())]
    return "\n".join(lines) + "\n"
