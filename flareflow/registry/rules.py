"""The registry's pure rules: calendar versions, the champion rule, model digests, and its tag names.

A calendar version is ``YYYY.MM.N``: the month of the data interval the model was trained on, and N
counting from 1 within that month. It stays a string tag: PEP 440 would turn ``2026.03.1`` into
``2026.3.1``; versions sort by :func:`parse_calendar_version`.

The champion rule (:func:`decide`): a new version takes the ``champion`` alias when its
sample-weighted validation AUC is at least the champion's minus a tolerance; otherwise it is a
challenger. With ``mlflow.promotion: approval`` a version that passes the rule awaits a person's answer
first (:func:`settle`): approved, it takes the alias; rejected or unanswered in time, it stays a
challenger. Nothing here talks to MLflow or the warehouse (see :mod:`flareflow.registry.mlflow_registry`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
#: promotion modes (``mlflow.promotion``)
AUTOMATIC = "automatic"
APPROVAL = "approval"
#: a version's approval (tag and ``model_versions.approval``), and who answered
APPROVAL_TAG = "approval"
APPROVAL_BY_TAG = "approval_by"
AWAITING = "awaiting"
APPROVED = "approved"
REJECTED = "rejected"
TIMED_OUT = "timed_out"
#: a version a re-run of its Airflow run replaced: why, and the calendar version that replaced it
RETIRED_TAG = "retired"
REPLACED_BY_TAG = "replaced_by"
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


def model_digest(params: Mapping[str, Any], fingerprint: str) -> str:
    """Return a digest of a global model's weights and the config it was trained with."""
    canonical = json.dumps({"params": params, "fingerprint": fingerprint}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


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
    :param approval: None when decided automatically; else ``awaiting`` (the role is the rule's, not
        applied yet), ``approved``, ``rejected`` or ``timed_out``
    """

    role: str
    reason: str
    validation_auc: float
    previous_champion: str | None = None
    approval: str | None = None

    @property
    def awaiting(self) -> bool:
        """Return whether the decision waits for a person's answer."""
        return self.approval == AWAITING

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "promotion_reason": self.reason, "validation_auc": repr(self.validation_auc),
                "previous_champion": self.previous_champion or "", "approval": self.approval or ""}


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


def settle(pending: Promotion, *, approved: bool, by: str | None, comment: str = "", timeout: str = "") -> Promotion:
    """Return the decision once a person answered a version awaiting approval, or nobody did in time.

    :param pending: the awaiting decision (the champion rule's reason)
    :param approved: whether the answer was to approve
    :param by: who answered; None when the wait timed out
    :param comment: what they wrote, if anything
    :param timeout: the wait's length in words, for a timeout's reason
    """
    note = f" ({comment.strip()})" if comment and comment.strip() else ""
    if by is None:
        return Promotion(CHALLENGER, f"no approval within {timeout or 'the response timeout'}; {pending.reason}",
                         pending.validation_auc, pending.previous_champion, TIMED_OUT)
    if approved:
        return Promotion(CHAMPION, f"approved by {by}{note}; {pending.reason}", pending.validation_auc,
                         pending.previous_champion, APPROVED)
    return Promotion(CHALLENGER, f"rejected by {by}{note}; {pending.reason}", pending.validation_auc,
                     pending.previous_champion, REJECTED)
