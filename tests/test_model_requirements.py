"""The logged model's pip requirements are pinned from what is installed, not inferred by MLflow."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import pytest

from flareflow.registry.requirements import MODEL_DISTRIBUTIONS, model_pip_requirements


def test_every_distribution_the_model_needs_is_pinned_to_its_installed_version() -> None:
    pins = model_pip_requirements()
    assert pins == [f"{name}=={version(name)}" for name in MODEL_DISTRIBUTIONS]
    names = [pin.split("==")[0] for pin in pins]
    # the estimator and the format MLflow saves it in; mlflow pins itself
    assert {"scikit-learn", "skops", "numpy"} <= set(names)
    assert "mlflow" not in names
    assert all(pin.split("==")[1][0].isdigit() for pin in pins)


def test_a_distribution_that_is_not_installed_is_named() -> None:
    with pytest.raises(PackageNotFoundError, match="no-such-distribution-xyz"):
        model_pip_requirements(("scikit-learn", "no-such-distribution-xyz"))
