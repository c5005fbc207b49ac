"""The MLflow model registry: log the global model, register it, tag it with a calendar version.

A calendar version is ``YYYY.MM.N``: the month of the data interval the model was trained on, and N
counting from 1 within that month. N is handed out under a PostgreSQL advisory lock in the warehouse
and recorded there, so it never repeats, even for concurrent runs. It stays a string tag: PEP 440
would turn ``2026.03.1`` into ``2026.3.1``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from psycopg2.extensions import connection as Connection

from fl_tasks.train.model import build_pipeline
from flareflow.warehouse.loaders import RunInfo

log = logging.getLogger(__name__)

_CALENDAR = re.compile(r"(\d{4})\.(\d{2})\.([1-9]\d*)", re.ASCII)
RUN_TAG = "airflow_run_id"
FINGERPRINT_TAG = "config_fingerprint"
CALENDAR_TAG = "calendar_version"
DIGEST_TAG = "model_digest"


def calendar_version(year: int, month: int, n: int) -> str:
    """Return the calendar version string, e.g. ``2026.03.1``."""
    if not 1 <= month <= 12 or n < 1:
        raise ValueError(f"no calendar version for year={year} month={month} n={n}")
    return f"{year:04d}.{month:02d}.{n}"


def parse_calendar_version(text: str) -> tuple[int, int, int]:
    """Return (year, month, n) of a calendar version, the order versions sort in."""
    match = _CALENDAR.fullmatch(text)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"not a calendar version YYYY.MM.N: {text!r}")
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


@dataclass(frozen=True)
class RegisteredModel:
    """A registered model version and where it came from."""

    calendar_version: str
    mlflow_version: str
    mlflow_run_id: str

    def as_dict(self) -> dict[str, str]:
        return {"calendar_version": self.calendar_version, "mlflow_version": self.mlflow_version,
                "mlflow_run_id": self.mlflow_run_id}


def _flatten(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(_flatten(f"{prefix}.{key}" if prefix else str(key), inner))
        return flat
    return {prefix: value}


def parent_run(client: MlflowClient, experiment: str, run: RunInfo) -> str:
    """Return the MLflow run of an Airflow run, creating it the first time (retry-safe)."""
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    existing = client.search_runs([experiment_id], filter_string=f"tags.{RUN_TAG} = '{run.run_id}'",
                                  max_results=1)
    runs = [r for r in existing if not r.data.tags.get("mlflow.parentRunId")]
    if runs:
        return runs[0].info.run_id
    created = client.create_run(experiment_id, run_name=run.run_id,
                                tags={RUN_TAG: run.run_id, FINGERPRINT_TAG: run.config_fingerprint})
    return created.info.run_id


def adopt_site_runs(client: MlflowClient, experiment: str, run: RunInfo, parent_id: str) -> int:
    """Nest the per-site runs NVFlare's MLflow receiver made for this Airflow run under its parent."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return 0
    children = client.search_runs([found.experiment_id], filter_string=f"tags.{RUN_TAG} = '{run.run_id}'")
    adopted = 0
    for child in children:
        if child.info.run_id != parent_id:
            client.set_tag(child.info.run_id, "mlflow.parentRunId", parent_id)
            adopted += 1
    return adopted


def log_global_model(
    client: MlflowClient, parent_id: str, *, config: Mapping[str, Any], stats: Mapping[str, Any],
    training: Mapping[str, Any],
) -> str:
    """Log params, the global metrics and the model to the parent run; return the logged model's id.

    :param config: the merged ``train`` job config (logged as params)
    :param stats: the normalized federated statistics (global mean and stddev)
    :param training: the training job's result
    """
    features = stats["features"]
    means = {f: stats["statistics"]["mean"][f]["global"] for f in features}
    stddevs = {f: stats["statistics"]["stddev"][f]["global"] for f in features}
    pipeline = build_pipeline(features, means, stddevs, training["model"])
    # the example is the global mean patient: an aggregate, never a real record
    example = pd.DataFrame([means], columns=features)
    signature = infer_signature(example, pipeline.predict_proba(example)[:, 1])
    with mlflow.start_run(run_id=parent_id):
        mlflow.log_params({k: str(v)[:500] for k, v in _flatten("", config).items()})
        for entry in training["rounds"]:
            mlflow.log_metrics({f"validation_{k}": v for k, v in entry["metrics"]["global"].items()},
                               step=entry["round"])
        mlflow.log_metrics({f"test_{k}": v for k, v in training["test"]["global"].items()})
        # SimpleImputer keeps the dtype it was fitted on; numpy.dtype is plain data, safe to load
        info = mlflow.sklearn.log_model(pipeline, name="model", signature=signature, input_example=example,
                                        skops_trusted_types=["numpy.dtype"])
    return str(info.model_id)


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description="flareflow: federated coronary disease model")


def register_calendar_version(
    conn: Connection, client: MlflowClient, *, run: RunInfo, model_name: str, model_id: str,
    parent_id: str, sites: Sequence[str], model_digest: str = "",
) -> RegisteredModel:
    """Register the model under the next calendar version of the run's data month.

    The number is taken and recorded in one warehouse transaction holding an advisory lock for the
    month, so concurrent runs get distinct numbers; if registering fails, nothing is recorded.
    """
    start = run.data_interval_start.astimezone(UTC)  # the warehouse's months are UTC months too
    year, month = start.year, start.month
    _ensure_registered_model(client, model_name)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{model_name}:{year}:{month}",))
        cur.execute("SELECT coalesce(max(n), 0) + 1 FROM calendar_numbers "
                    "WHERE registered_model = %s AND year = %s AND month = %s", (model_name, year, month))
        n = int(cur.fetchone()[0])
        version = calendar_version(year, month, n)
        tags = {CALENDAR_TAG: version, FINGERPRINT_TAG: run.config_fingerprint, RUN_TAG: run.run_id,
                DIGEST_TAG: model_digest, "sites": ",".join(sites)}
        created = client.create_model_version(model_name, source=f"models:/{model_id}", run_id=parent_id,
                                              tags=tags, model_id=model_id)
        try:
            cur.execute("INSERT INTO calendar_numbers VALUES (%s, %s, %s, %s, %s)",
                        (model_name, year, month, n, run.run_id))
            cur.execute("DELETE FROM model_versions WHERE run_id = %s", (run.run_id,))
            cur.execute(
                "INSERT INTO model_versions (run_id, registered_model, year, month, n, calendar_version,"
                " mlflow_version, mlflow_run_id, config_fingerprint) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (run.run_id, model_name, year, month, n, version, str(created.version), parent_id,
                 run.config_fingerprint),
            )
        except Exception:
            client.delete_model_version(model_name, created.version)
            raise
    client.set_tag(parent_id, CALENDAR_TAG, version)
    log.info("registered %s version %s as %s", model_name, created.version, version)
    return RegisteredModel(version, str(created.version), parent_id)


def model_digest(params: Mapping[str, Any], fingerprint: str) -> str:
    """Return a digest of a global model's weights and the config it was trained with."""
    canonical = json.dumps({"params": params, "fingerprint": fingerprint}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def registered_version(conn: Connection, client: MlflowClient, model_name: str, run_id: str,
                       digest: str) -> RegisteredModel | None:
    """Return the version this run already registered for the same model, if any (a re-run)."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT calendar_version, mlflow_version, mlflow_run_id FROM model_versions"
                    " WHERE run_id = %s AND registered_model = %s", (run_id, model_name))
        row = cur.fetchone()
    if row is None:
        return None
    try:
        version = client.get_model_version(model_name, row[1])
    except MlflowException:
        return None
    return RegisteredModel(*row) if version.tags.get(DIGEST_TAG) == digest else None


def discard_run_models(client: MlflowClient, model_name: str, run_id: str) -> int:
    """Delete the model versions a failed Airflow run registered; return how many."""
    try:
        versions = client.search_model_versions(f"name = '{model_name}' and tags.{RUN_TAG} = '{run_id}'")
    except MlflowException:
        return 0
    for version in versions:
        client.delete_model_version(model_name, version.version)
    return len(versions)
