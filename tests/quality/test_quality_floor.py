"""Federated results as good as pooled ones (issue 4), on the real training job.

One federated statistics job, then the training job for each seed, all side by side on the test
stack's NVFlare POC; the references (centralized on the pooled training splits, each site alone)
come from ``benchmarks/quality.py``, which also proves, for every seed and site, that it scores the
federated model exactly as the clients did (same data, encoding, standardization, split).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.quality import SEEDS, Comparison, compare, failures, floor_checks, reference_checks, report
from flareflow.local.stack import Stack


@pytest.fixture(scope="module")
def comparison(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Comparison:
    result = compare(stack, Path(tmp_path_factory.mktemp("quality")), seeds=SEEDS)
    print(report(result))  # the table, in the test's captured output
    return result


def test_every_seed_was_trained_federated_and_evaluated_on_every_site(comparison: Comparison) -> None:
    assert comparison.seeds == list(SEEDS)
    for evaluation in comparison.evaluations:
        assert set(evaluation["federated"]) == {"union", *comparison.sites}
        assert set(comparison.sites) == {"cleveland", "hungary", "switzerland", "va-long-beach"}


def test_federated_model_meets_the_floor_against_pooled_and_local_models(comparison: Comparison) -> None:
    failed = failures(floor_checks(comparison))
    assert not failed, "floor not met:\n  " + "\n  ".join(failed) + "\n\n" + report(comparison)


def test_pooled_reference_is_a_sound_logistic_regression(comparison: Comparison) -> None:
    failed = failures(reference_checks(comparison))
    assert not failed, "weak reference:\n  " + "\n  ".join(failed) + "\n\n" + report(comparison)


def _comparison(federated: tuple[float, float], centralized: tuple[float, float],
                local: tuple[float, float]) -> Comparison:
    """A one-seed comparison of two sites from (auc, accuracy) pairs on the union."""
    scores = {"centralized": centralized, "centralized-logreg": centralized, "federated": federated,
              "local:a": local, "local:b": (0.5, 0.5)}
    evaluation = {model: {"union": {"auc": auc, "accuracy": acc}, "a": {}, "b": {}}
                  for model, (auc, acc) in scores.items()}
    return Comparison(sites=["a", "b"], training={}, seeds=[0], evaluations=[evaluation])


def test_floor_fails_when_federated_trails_pooled_or_a_site_alone_does_as_well() -> None:
    assert not failures(floor_checks(_comparison((0.86, 0.78), (0.865, 0.79), (0.85, 0.77))))
    trailing_auc = failures(floor_checks(_comparison((0.85, 0.79), (0.865, 0.79), (0.80, 0.70))))
    assert len(trailing_auc) == 1 and "auc" in trailing_auc[0]
    trailing_accuracy = failures(floor_checks(_comparison((0.86, 0.76), (0.86, 0.785), (0.80, 0.70))))
    assert len(trailing_accuracy) == 1 and "accuracy" in trailing_accuracy[0]
    local_as_good = failures(floor_checks(_comparison((0.86, 0.78), (0.86, 0.78), (0.86, 0.77))))
    assert local_as_good == ["federated auc 0.8600 > local:a 0.8600"]
