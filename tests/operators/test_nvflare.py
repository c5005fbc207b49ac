"""NVFlareJobOperator's helpers (the operator itself runs on the real federation in tests/failures,
tests/e2e and tests/secure; the hook and trigger have tests of their own beside this folder)."""

from __future__ import annotations

import re

from flareflow.operators.nvflare import submit_token


def test_submit_token_is_stable_valid_and_moves_on_after_a_failed_job() -> None:
    args = {"config": {"x": 1}, "until": "2026-11-01"}
    token = submit_token("dag", "manual__2026-11-01T00:00:00+00:00", "federated_stats", args, 1)
    assert token == submit_token("dag", "manual__2026-11-01T00:00:00+00:00", "federated_stats", args, 1)
    assert re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", token)
    assert token != submit_token("dag", "manual__2026-11-01T00:00:00+00:00", "federated_stats", args, 2)
    assert token != submit_token("dag", "manual__2026-11-02T00:00:00+00:00", "federated_stats", args, 1)
    assert token != submit_token("dag", "manual__2026-11-01T00:00:00+00:00", "federated_stats", {**args, "x": 2}, 1)
