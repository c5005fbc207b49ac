"""The model registry: calendar versions and the champion rule (:mod:`.rules`, pure), and the MLflow side.

:mod:`.mlflow_registry` logs the global model, registers it under its calendar version and promotes it;
its warehouse records live in :mod:`flareflow.warehouse.models`. Importing this package does not import
MLflow: the names below are the pure rules and the registry's tag names.
"""

from __future__ import annotations

from flareflow.registry.rules import (
    AUC_TAG,
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
    RUN_TAG,
    SITE_TAG,
    Promotion,
    RegisteredModel,
    calendar_version,
    decide,
    final_validation_auc,
    model_digest,
    parse_calendar_version,
)

__all__ = [
    "AUC_TAG", "CALENDAR_TAG", "CHALLENGER", "CHAMPION", "DIGEST_TAG", "FINGERPRINT_TAG", "KIND_TAG",
    "PIPELINE_KIND", "PREVIOUS_TAG", "PROMOTION_TAG", "REASON_TAG", "RUN_TAG", "SITE_TAG", "Promotion",
    "RegisteredModel", "calendar_version", "decide", "final_validation_auc", "model_digest",
    "parse_calendar_version",
]
