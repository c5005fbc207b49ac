"""The MLflow model registry: log the global model, register it, tag it with a calendar version, promote it.

A calendar version is ``YYYY.MM.N``: the month of the data interval the model was trained on, and N
counting from 1 within that month. N is handed out under a PostgreSQL advisory lock in the warehouse
and recorded there, so it never repeats, even for concurrent runs. It stays a string tag: PEP 440
would turn ``2026.03.1`` into ``2026.3.1``.

Promotion: the registered model's ``champion`` alias moves to a new version only when the version's
sample-weighted validation AUC is at least the champion's minus a tolerance; otherwise the version is a
challenger. The decision and its reason are version tags and ``model_versions`` columns, taken under
a per-model advisory lock. Discarding a failed run's champion hands the alias back to the champion
before it (MLflow drops an alias with its version).
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
#: marks the run flareflow creates for an Airflow run; NVFlare's per-site runs carry the same RUN_TAG
KIND_TAG = "run_kind"
PIPELINE_KIND = "pipeline"
SITE_TAG = "site"
CHAMPION = "champion"
CHALLENGER = "challenger"
AUC_TAG = "validation_auc"
PROMOTION_TAG = "promotion"
REASON_TAG = "promotion_reason"
PREVIOUS_TAG = "previous_champion"
#: float noise allowance, so a tie at exactly the champion's AUC minus the tolerance counts as a tie
_EPSILON = 1e-12


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
    """Return the MLflow run of an Airflow run, creating it the first time (retry-safe).

    It is told from NVFlare's per-site runs of the same Airflow run (which carry its run id too) by
    its ``run_kind`` tag.
    """
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    existing = client.search_runs(
        [experiment_id], max_results=1,
        filter_string=f"tags.{RUN_TAG} = '{run.run_id}' and tags.{KIND_TAG} = '{PIPELINE_KIND}'",
    )
    if existing:
        return existing[0].info.run_id
    created = client.create_run(experiment_id, run_name=run.run_id, tags={
        RUN_TAG: run.run_id, FINGERPRINT_TAG: run.config_fingerprint, KIND_TAG: PIPELINE_KIND})
    return created.info.run_id


def _site_of(run_name: str, sites: Sequence[str]) -> str | None:
    """Return the site a per-site run belongs to: NVFlare names it ``<site>-<job id>-...``."""
    matching = [site for site in sites if run_name.startswith(f"{site}-")]
    return max(matching, key=len) if matching else None


def adopt_site_runs(client: MlflowClient, experiment: str, run: RunInfo, parent_id: str) -> int:
    """Nest the per-site runs NVFlare's MLflow receiver made for this Airflow run under its parent.

    Each also gets a ``site`` tag naming its hospital.
    """
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return 0
    children = client.search_runs([found.experiment_id], filter_string=f"tags.{RUN_TAG} = '{run.run_id}'")
    adopted = 0
    for child in children:
        if child.info.run_id == parent_id or child.data.tags.get(KIND_TAG) == PIPELINE_KIND:
            continue
        client.set_tag(child.info.run_id, "mlflow.parentRunId", parent_id)
        site = _site_of(child.info.run_name or "", run.sites)
        if site:
            client.set_tag(child.info.run_id, SITE_TAG, site)
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
        client.create_registered_model(name, description="flareflow: a model trained by federated learning")


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


def final_validation_auc(training: Mapping[str, Any]) -> float:
    """Return the sample-weighted validation AUC of the final global model, from the training result.

    :param training: the training job's result; its last round (``final_round``) is the final evaluation
    """
    final = next(entry for entry in training["rounds"] if entry["round"] == training["final_round"])
    auc = final["metrics"]["global"].get("auc")
    if auc is None:
        raise LookupError("the training result holds no global validation AUC of the final model")
    return float(auc)


@dataclass(frozen=True)
class Promotion:
    """The champion/challenger decision taken for one model version.

    :param role: ``champion`` (it took the alias) or ``challenger``
    :param reason: why, in words
    :param validation_auc: the version's sample-weighted validation AUC
    :param previous_champion: the calendar version holding the alias when the decision was taken
    """

    role: str
    reason: str
    validation_auc: float
    previous_champion: str | None = None

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "promotion_reason": self.reason, "validation_auc": repr(self.validation_auc),
                "previous_champion": self.previous_champion or ""}


def decide(auc: float, champion: tuple[str, float | None] | None, tolerance: float) -> tuple[str, str]:
    """Return the role of a new version with this validation AUC, and the reason.

    :param auc: the new version's validation AUC
    :param champion: the champion's calendar version and validation AUC; None without a champion
    :param tolerance: how far below the champion's AUC a new version may be and still take the alias
    """
    if champion is None:
        return CHAMPION, "first version: no champion yet"
    name, best = champion
    if best is None:
        return CHAMPION, f"champion {name} has no validation AUC to compare with"
    against = f"champion {name}'s {best:.3f} - tolerance {tolerance:.3f}"
    if auc + _EPSILON >= best - tolerance:
        return CHAMPION, f"validation AUC {auc:.3f} >= {against}"
    return CHALLENGER, f"validation AUC {auc:.3f} < {against}"


def _lock_promotions(cur: Any, model_name: str) -> None:
    """Serialize the alias changes of one registered model until the transaction ends."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{model_name}:{CHAMPION}",))


def _champion_version(client: MlflowClient, model_name: str) -> str | None:
    """Return the MLflow version holding the ``champion`` alias, if any."""
    return client.get_registered_model(model_name).aliases.get(CHAMPION)


def _recorded(tags: Mapping[str, str]) -> Promotion | None:
    """Return the decision a version's tags hold, if it was completed."""
    if tags.get(PROMOTION_TAG) not in (CHAMPION, CHALLENGER):
        return None
    return Promotion(tags[PROMOTION_TAG], tags.get(REASON_TAG, ""), float(tags[AUC_TAG]),
                     tags.get(PREVIOUS_TAG) or None)


def promote(
    conn: Connection, client: MlflowClient, *, model_name: str, registered: RegisteredModel, auc: float,
    tolerance: float,
) -> Promotion:
    """Decide whether a registered version takes the ``champion`` alias; record the decision (retry-safe).

    Decisions on one registered model hold an advisory lock, so concurrent runs never compare with the
    same champion. A version decided before keeps its decision (an identical re-run). The warehouse row
    is written in the lock's transaction; in MLflow the ``promotion`` tag is written last and marks a
    completed decision, so a retry after a failure in between decides again.

    :param registered: the version, already registered and recorded in ``model_versions``
    :param auc: its sample-weighted validation AUC (see :func:`final_validation_auc`)
    :param tolerance: the configured ``mlflow.champion_tolerance``
    """
    version = registered.mlflow_version
    with conn, conn.cursor() as cur:
        _lock_promotions(cur, model_name)
        tags = client.get_model_version(model_name, version).tags
        promotion = _recorded(tags)
        champion = _champion_version(client, model_name)
        if promotion is None and champion == version:  # it took the alias, then failed before the last tag
            promotion = Promotion(CHAMPION, tags.get(REASON_TAG, ""), auc, tags.get(PREVIOUS_TAG) or None)
        if promotion is None:
            current = None
            if champion is not None:
                champion_tags = client.get_model_version(model_name, champion).tags
                best = champion_tags.get(AUC_TAG)
                current = (champion_tags.get(CALENDAR_TAG, f"v{champion}"), float(best) if best else None)
            role, reason = decide(auc, current, tolerance)
            promotion = Promotion(role, reason, auc, current[0] if current else None)
        cur.execute(
            "UPDATE model_versions SET role = %s, promotion_reason = %s, validation_auc = %s,"
            " previous_champion = %s, decided_at = coalesce(decided_at, clock_timestamp())"
            " WHERE registered_model = %s AND mlflow_version = %s",
            (promotion.role, promotion.reason, promotion.validation_auc, promotion.previous_champion,
             model_name, version),
        )
        if cur.rowcount != 1:
            raise LookupError(f"{model_name} version {version} has no row in model_versions")
        if _recorded(tags) is None:
            for key, value in ((AUC_TAG, repr(promotion.validation_auc)), (REASON_TAG, promotion.reason),
                               (PREVIOUS_TAG, promotion.previous_champion or "")):
                client.set_model_version_tag(model_name, version, key, value)
            if promotion.role == CHAMPION:
                client.set_registered_model_alias(model_name, CHAMPION, version)
            client.set_model_version_tag(model_name, version, PROMOTION_TAG, promotion.role)
    log.info("%s %s (version %s) is %s: %s", model_name, registered.calendar_version, version, promotion.role,
             promotion.reason)
    return promotion


def _restore_champion(cur: Any, client: MlflowClient, model_name: str, deleted: set[str]) -> str | None:
    """Give the alias to the latest version decided champion that still exists; return its calendar version."""
    cur.execute("SELECT mlflow_version, calendar_version FROM model_versions"
                " WHERE registered_model = %s AND role = %s ORDER BY decided_at DESC", (model_name, CHAMPION))
    earlier = [row for row in cur.fetchall() if row[0] not in deleted]
    live = {str(v.version) for v in client.search_model_versions(f"name = '{model_name}'")} if earlier else set()
    for mlflow_version, calendar in earlier:
        if mlflow_version in live:
            client.set_registered_model_alias(model_name, CHAMPION, mlflow_version)
            log.info("%s: the champion alias went back to %s (version %s)", model_name, calendar, mlflow_version)
            return str(calendar)
    log.warning("%s: the discarded champion had no earlier champion left; no version holds the alias",
                model_name)
    return None


def discard_run_models(conn: Connection, client: MlflowClient, model_name: str, run_id: str) -> int:
    """Delete the model versions a failed Airflow run registered; return how many.

    MLflow drops the ``champion`` alias with its version: if the run's version held it, the alias goes
    back to the latest earlier champion still registered (by the warehouse's decision order).
    """
    try:
        versions = client.search_model_versions(f"name = '{model_name}' and tags.{RUN_TAG} = '{run_id}'")
    except MlflowException:
        return 0
    if not versions:
        return 0
    with conn, conn.cursor() as cur:
        _lock_promotions(cur, model_name)
        champion = _champion_version(client, model_name)
        for version in versions:
            client.delete_model_version(model_name, version.version)
        deleted = {str(version.version) for version in versions}
        if champion in deleted:
            _restore_champion(cur, client, model_name, deleted)
    return len(versions)
