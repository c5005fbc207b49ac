"""PromotionApprovalOperator's own decisions (it waits for real in tests/services/test_approval.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from flareflow.operators.approval import PromotionApprovalOperator, _who

MODEL = {"registered_model": "m", "calendar_version": "2026.03.2", "mlflow_version": "7", "role": "champion",
         "promotion_reason": "first version: no champion yet", "validation_auc": "0.85", "previous_champion": "",
         "config_fingerprint": "f" * 64}


def context(model: dict) -> dict:
    validated = {"jobs": {"train": {"mlflow": {"approval_timeout_s": 30}}}}
    xcoms = {"validate_config": validated, "register_model": model}
    return {"ti": SimpleNamespace(xcom_pull=lambda task_ids: xcoms.get(task_ids)), "run_id": "r"}


@pytest.mark.parametrize(("approval", "reason"), [("", "automatic promotion"),
                                                  ("approved", "nothing awaits approval")])
def test_it_skips_unless_a_version_awaits_approval(approval: str, reason: str) -> None:
    with pytest.raises(AirflowSkipException, match=reason):
        PromotionApprovalOperator(task_id="approve_promotion").execute(context({**MODEL, "approval": approval}))


def test_a_timeout_answers_for_nobody_and_a_user_is_named() -> None:
    assert _who(None) is None
    assert _who({"id": "7", "name": "alice"}) == "alice"
    assert _who({"id": "bob", "name": ""}) == "bob"
