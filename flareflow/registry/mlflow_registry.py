"""The MLflow side of the registry: log the global model, register it under a calendar version, promote it.

The calendar number N of ``YYYY.MM.N`` is handed out under a PostgreSQL advisory lock in the warehouse
and recorded there (:mod:`flareflow.warehouse.models`), so it never repeats, even for concurrent runs.

Promotion applies :func:`flareflow.registry.rules.decide` to the version and the current champion; the
decision and its reason are version tags and ``model_versions`` columns, taken under a per-model
advisory lock. With approval, a version passing the rule is recorded as awaiting (``approval`` tag) and
:func:`settle_approval` applies a person's answer later. Discarding a failed run's champion hands the
alias back to the champion before it (MLflow drops an alias with its version); so does retiring it
(:func:`retire_replaced`: a re-run of its Airflow run registered a different model).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from psycopg2.extensions import connection as Connection

from fl_tasks.train.model import build_pipeline
from flareflow.registry.requirements import model_pip_requirements
from flareflow.registry.rules import (
    APPROVAL_BY_TAG,
    APPROVAL_TAG,
    AUC_TAG,
    AWAITING,
    CALENDAR_TAG,
    CHALLENGER,
    CHAMPION,
    DIGEST_TAG,
    FINGERPRINT_TAG,
    KIND_TAG,
    PIPELINE_KIND,
    PREVIOUS_TAG,
    PROMOTION_TAG,
    REASON_TAG,
    REPLACED_BY_TAG,
    RETIRED_TAG,
    RUN_TAG,
    SITE_TAG,
    Promotion,
    RegisteredModel,
    calendar_version,
    decide,
    settle,
)
from flareflow.warehouse import models
from flareflow.warehouse.loaders import RunInfo

log = logging.getLogger(__name__)


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
    started = time.monotonic()
    features = stats["features"]
    means = {f: stats["statistics"]["mean"][f]["global"] for f in features}
    stddevs = {f: stats["statistics"]["stddev"][f]["global"] for f in features}
    pipeline = build_pipeline(features, means, stddevs, training["model"])
    # the example is the global mean patient: an aggregate, never a real record
    example = pd.DataFrame([means], columns=features)
    signature = infer_signature(example, pipeline.predict_proba(example)[:, 1])
    now = int(time.time() * 1000)
    metrics = [Metric(f"validation_{k}", float(v), now, int(entry["round"]))
               for entry in training["rounds"] for k, v in entry["metrics"]["global"].items()]
    metrics += [Metric(f"test_{k}", float(v), now, 0) for k, v in training["test"]["global"].items()]
    params = [Param(k, str(v)[:500]) for k, v in _flatten("", config).items()]
    client.log_batch(parent_id, metrics=metrics, params=params)  # one request (MLflow chunks big ones)
    batched = time.monotonic()
    with mlflow.start_run(run_id=parent_id), warnings.catch_warnings():
        # skops warns about every type it was told to trust when it loads the model back to check it
        warnings.filterwarnings("ignore", module=r"skops(\.|$)")
        # SimpleImputer keeps the dtype it was fitted on; numpy.dtype is plain data, safe to load.
        # The requirements are given: MLflow would otherwise infer them in a fresh Python process.
        info = mlflow.sklearn.log_model(pipeline, name="model", signature=signature, input_example=example,
                                        skops_trusted_types=["numpy.dtype"],
                                        pip_requirements=model_pip_requirements())
    log.info("logged the global model in %.2f s (metrics and params %.2f s)", time.monotonic() - started,
             batched - started)
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
        n = models.take_calendar_number(cur, model_name, year, month)
        version = calendar_version(year, month, n)
        tags = {CALENDAR_TAG: version, FINGERPRINT_TAG: run.config_fingerprint, RUN_TAG: run.run_id,
                DIGEST_TAG: model_digest, "sites": ",".join(sites)}
        created = client.create_model_version(model_name, source=f"models:/{model_id}", run_id=parent_id,
                                              tags=tags, model_id=model_id)
        try:
            models.record_version(cur, run_id=run.run_id, model_name=model_name, year=year, month=month, n=n,
                                  calendar_version=version, mlflow_version=str(created.version),
                                  mlflow_run_id=parent_id, config_fingerprint=run.config_fingerprint)
        except Exception:
            client.delete_model_version(model_name, created.version)
            raise
    client.set_tag(parent_id, CALENDAR_TAG, version)
    log.info("registered %s version %s as %s", model_name, created.version, version)
    return RegisteredModel(version, str(created.version), parent_id)


def registered_version(conn: Connection, client: MlflowClient, model_name: str, run_id: str,
                       digest: str) -> RegisteredModel | None:
    """Return the version this run already registered for the same model, if any (a re-run)."""
    row = models.recorded_version(conn, model_name, run_id)
    if row is None:
        return None
    try:
        version = client.get_model_version(model_name, row[1])
    except MlflowException:
        return None
    return RegisteredModel(*row) if version.tags.get(DIGEST_TAG) == digest else None


def _champion_version(client: MlflowClient, model_name: str) -> str | None:
    """Return the MLflow version holding the ``champion`` alias, if any."""
    return client.get_registered_model(model_name).aliases.get(CHAMPION)


def _recorded(tags: Mapping[str, str]) -> Promotion | None:
    """Return the decision a version's tags hold, if it was completed."""
    if tags.get(PROMOTION_TAG) not in (CHAMPION, CHALLENGER):
        return None
    return Promotion(tags[PROMOTION_TAG], tags.get(REASON_TAG, ""), float(tags[AUC_TAG]),
                     tags.get(PREVIOUS_TAG) or None, tags.get(APPROVAL_TAG) or None)


def _record(cur: Any, client: MlflowClient, model_name: str, version: str, promotion: Promotion,
            approval_by: str | None = None) -> None:
    """Write a decision to the warehouse row and the version's tags; the ``promotion`` tag last, if final."""
    final = not promotion.awaiting
    models.record_promotion(cur, model_name, version, role=promotion.role if final else None,
                            reason=promotion.reason, validation_auc=promotion.validation_auc,
                            previous_champion=promotion.previous_champion, approval=promotion.approval,
                            approval_by=approval_by)
    tags = {AUC_TAG: repr(promotion.validation_auc), REASON_TAG: promotion.reason,
            PREVIOUS_TAG: promotion.previous_champion or ""}
    if promotion.approval:
        tags[APPROVAL_TAG] = promotion.approval
    if approval_by:
        tags[APPROVAL_BY_TAG] = approval_by
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    if final:
        if promotion.role == CHAMPION:
            client.set_registered_model_alias(model_name, CHAMPION, version)
        client.set_model_version_tag(model_name, version, PROMOTION_TAG, promotion.role)


def _current_champion(client: MlflowClient, model_name: str) -> tuple[str, float | None] | None:
    """Return the champion's calendar version and validation AUC, if there is a champion."""
    champion = _champion_version(client, model_name)
    if champion is None:
        return None
    tags = client.get_model_version(model_name, champion).tags
    best = tags.get(AUC_TAG)
    return tags.get(CALENDAR_TAG, f"v{champion}"), float(best) if best else None


def promote(
    conn: Connection, client: MlflowClient, *, model_name: str, registered: RegisteredModel, auc: float,
    tolerance: float, approval: bool = False,
) -> Promotion:
    """Decide whether a registered version takes the ``champion`` alias; record the decision (retry-safe).

    Decisions on one registered model hold an advisory lock, so concurrent runs never compare with the
    same champion. A version decided before keeps its decision (an identical re-run). The warehouse row
    is written in the lock's transaction; in MLflow the ``promotion`` tag is written last and marks a
    completed decision, so a retry after a failure in between decides again.

    With ``approval``, a version that passes the rule does not take the alias: it is recorded as awaiting
    approval (``approval`` tag, no ``promotion`` tag, ``model_versions.role`` NULL) until
    :func:`settle_approval`.

    :param registered: the version, already registered and recorded in ``model_versions``
    :param auc: its sample-weighted validation AUC (see :func:`final_validation_auc`)
    :param tolerance: the configured ``mlflow.champion_tolerance``
    :param approval: whether ``mlflow.promotion`` is ``approval``
    """
    version = registered.mlflow_version
    with conn, conn.cursor() as cur:
        models.lock_promotions(cur, model_name)
        tags = client.get_model_version(model_name, version).tags
        promotion = _recorded(tags)
        if promotion is None and _champion_version(client, model_name) == version:
            # it took the alias, then failed before the last tag
            promotion = Promotion(CHAMPION, tags.get(REASON_TAG, ""), auc, tags.get(PREVIOUS_TAG) or None,
                                  tags.get(APPROVAL_TAG) or None)
        if promotion is not None:
            models.record_promotion(cur, model_name, version, role=promotion.role, reason=promotion.reason,
                                    validation_auc=promotion.validation_auc,
                                    previous_champion=promotion.previous_champion, approval=promotion.approval,
                                    approval_by=tags.get(APPROVAL_BY_TAG) or None)
            if tags.get(PROMOTION_TAG) != promotion.role:
                client.set_model_version_tag(model_name, version, PROMOTION_TAG, promotion.role)
        else:
            current = _current_champion(client, model_name)
            role, reason = decide(auc, current, tolerance)
            promotion = Promotion(role, reason, auc, current[0] if current else None,
                                  AWAITING if approval and role == CHAMPION else None)
            _record(cur, client, model_name, version, promotion)
    state = "awaits approval to become champion" if promotion.awaiting else f"is {promotion.role}"
    log.info("%s %s (version %s) %s: %s", model_name, registered.calendar_version, version, state, promotion.reason)
    return promotion


def settle_approval(
    conn: Connection, client: MlflowClient, *, model_name: str, mlflow_version: str, approved: bool,
    by: str | None, comment: str = "", timeout: str = "",
) -> Promotion:
    """Apply a person's answer to a version awaiting approval (or the wait's timeout); return the decision.

    Approved, the version takes the ``champion`` alias (the champion it replaces is recorded as
    ``previous_champion``); rejected or unanswered, it stays a challenger. Either way the reason names
    who answered (or the timeout), in the version's tags and its ``model_versions`` row. A version
    decided before keeps its decision (a retry).

    :param mlflow_version: the version awaiting approval
    :param approved: whether the answer was to approve
    :param by: who answered; None when nobody did in time
    :param comment: what they wrote, if anything
    :param timeout: the wait's length in words (for a timeout's reason)
    """
    with conn, conn.cursor() as cur:
        models.lock_promotions(cur, model_name)
        tags = client.get_model_version(model_name, mlflow_version).tags
        decided = _recorded(tags)
        if decided is not None:
            return decided
        if tags.get(APPROVAL_TAG) != AWAITING:
            raise LookupError(f"{model_name} version {mlflow_version} does not await approval")
        current = _current_champion(client, model_name)
        pending = Promotion(CHAMPION, tags.get(REASON_TAG, ""), float(tags[AUC_TAG]),
                            current[0] if current else None, AWAITING)
        promotion = settle(pending, approved=approved, by=by, comment=comment, timeout=timeout)
        _record(cur, client, model_name, mlflow_version, promotion, approval_by=by)
    log.info("%s version %s is %s: %s", model_name, mlflow_version, promotion.role, promotion.reason)
    return promotion


def retire_replaced(conn: Connection, client: MlflowClient, *, model_name: str, run_id: str,
                    kept: RegisteredModel) -> list[str]:
    """Retire the versions an earlier try of this Airflow run registered, now replaced by ``kept``.

    A re-run (a cleared run, a backfill reprocessing it) that trains a different model registers a new
    version; the one it replaces gets the ``retired`` and ``replaced_by`` tags and its warehouse row is
    retired (it stays, out of every view). If it held the ``champion`` alias, the alias goes back to the
    latest earlier champion still live. Return the retired MLflow versions (none when nothing was left).

    :param run_id: the Airflow run
    :param kept: the run's version that stays live
    """
    found = client.search_model_versions(f"name = '{model_name}' and tags.{RUN_TAG} = '{run_id}'")
    replaced = [v for v in found if str(v.version) != kept.mlflow_version and RETIRED_TAG not in v.tags]
    if not replaced:
        return []
    reason = f"replaced by {kept.calendar_version}: a re-run of {run_id} trained a different model"
    with conn, conn.cursor() as cur:
        models.lock_promotions(cur, model_name)
        models.retire_versions(cur, model_name, run_id, keep=kept.mlflow_version, replaced_by=kept.calendar_version)
        champion = _champion_version(client, model_name)
        retired = {str(v.version) for v in replaced}
        for version in sorted(retired, key=int):
            client.set_model_version_tag(model_name, version, REPLACED_BY_TAG, kept.calendar_version)
            client.set_model_version_tag(model_name, version, RETIRED_TAG, reason)
        if champion in retired:
            client.delete_registered_model_alias(model_name, CHAMPION)
            _restore_champion(cur, client, model_name, retired)
    log.info("%s: retired version(s) %s of run %s, %s", model_name, ", ".join(sorted(retired, key=int)), run_id,
             reason)
    return sorted(retired, key=int)


def _restore_champion(cur: Any, client: MlflowClient, model_name: str, deleted: set[str]) -> str | None:
    """Give the alias to the latest version decided champion that still exists; return its calendar version."""
    earlier = [row for row in models.versions_decided(cur, model_name, CHAMPION) if row[0] not in deleted]
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
        models.lock_promotions(cur, model_name)
        champion = _champion_version(client, model_name)
        for version in versions:
            client.delete_model_version(model_name, version.version)
        deleted = {str(version.version) for version in versions}
        if champion in deleted:
            _restore_champion(cur, client, model_name, deleted)
    return len(versions)
