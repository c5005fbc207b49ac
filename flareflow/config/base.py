"""What every config section shares: strict validation, and cross-field findings that name their keys.

A check across keys (a column used twice, a poll interval above the job timeout) reports each
:class:`Finding` with the keys involved, dotted paths below the model checked, preferred first. The
loader blames each finding on the file that set one of those keys (see ``flareflow.config.loader``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

#: the pydantic error type that carries findings (``ctx["findings"]``)
FINDINGS = "config"


class Section(BaseModel):
    """A config section: unknown keys are errors, values are never coerced (true is no 1, "10" no 10)."""

    # an int is still a valid float (and becomes one)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


@dataclass(frozen=True)
class Finding:
    """One problem found by a check across keys.

    :param reason: what is wrong
    :param fields: the keys involved, dotted paths below the model checked, preferred first
    :param value: the offending value, when it is not simply the value at the blamed key
    """

    reason: str
    fields: tuple[str, ...]
    value: Any = None


def finding(reason: str, *fields: str, value: Any = None) -> Finding:
    """Return a finding about some keys of the model checked.

    :param reason: what is wrong
    :param fields: the keys involved, dotted paths below the model checked, preferred first
    :param value: the offending value, when it is not simply the value at the blamed key
    """
    return Finding(reason, fields, value)


def raise_findings(findings: Iterable[Finding]) -> None:
    """Raise one validation error carrying every finding, if there is any.

    :param findings: the problems found by a model's cross-field checks
    """
    found = list(findings)
    if found:
        raise PydanticCustomError(FINDINGS, "{summary}", {"summary": found[0].reason, "findings": found})
