"""The pip requirements of the logged global model, pinned to the versions installed here.

Given to ``mlflow.sklearn.log_model`` so MLflow does not infer them: its inference loads the saved model
in a fresh Python process and records what it imports, most of ``register_model``'s time (10-20 s).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

#: what loading and scoring the model needs: the scikit-learn pipeline, its skops serialization, and the
#: numeric stack it runs on (MLflow adds its own pin to the list itself)
MODEL_DISTRIBUTIONS = ("scikit-learn", "skops", "numpy", "scipy", "pandas")


def model_pip_requirements(distributions: tuple[str, ...] = MODEL_DISTRIBUTIONS) -> list[str]:
    """Return ``name==version`` for each distribution the model needs, as installed in this environment.

    :param distributions: the distributions to pin
    :raises PackageNotFoundError: one is not installed (the model could not have been built here)
    """
    pins = []
    for name in distributions:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError as err:
            raise PackageNotFoundError(f"{name} is not installed: the model's requirements cannot be pinned") from err
    return pins
