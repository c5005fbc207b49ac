"""The pipeline's outputs as Airflow assets, and the extras each run's event carries.

A successful run of ``federated_retraining`` emits one event for each when it publishes its results
(``refresh_dashboard``: the run's rows become visible there). Schedule a DAG on one to run after it,
e.g. ``DAG(..., schedule=[flareflow.assets.MODEL])``, and read the newest event's extra:
``context["triggering_asset_events"][MODEL][-1].extra["calendar_version"]``.

- :data:`STATISTICS`: a data month's federated statistics in the warehouse (``feature_stats``,
  ``feature_histograms``, ``data_quality_*``, keyed by the run).
- :data:`MODEL`: the registered model version of the run, with its promotion decision.
- :data:`DASHBOARD`: the rendered dashboard page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import Asset

GROUP = "flareflow"
STATISTICS = Asset(name="flareflow.statistics", uri="flareflow://warehouse/statistics", group=GROUP,
                   extra={"tables": "feature_stats, feature_histograms, data_quality_sites, data_quality_columns"})
MODEL = Asset(name="flareflow.model", uri="flareflow://registry/model", group=GROUP,
              extra={"registry": "MLflow model registry"})
DASHBOARD = Asset(name="flareflow.dashboard", uri="flareflow://dashboard", group=GROUP,
                  extra={"served_at": "/flareflow/"})
OUTPUTS: tuple[Asset, ...] = (STATISTICS, MODEL, DASHBOARD)


def statistics_extra(*, run_id: str, month: str, fingerprint: str, sites: Sequence[str]) -> dict[str, Any]:
    """Return the extra of a statistics event: whose rows, for which month, computed with which config.

    :param run_id: the Airflow run whose rows they are (the warehouse's key)
    :param month: the data month ``YYYY-MM``
    :param fingerprint: the config fingerprint of the run
    :param sites: the hospitals the statistics cover
    """
    return {"run_id": run_id, "data_month": month, "config_fingerprint": fingerprint, "sites": list(sites)}


def model_extra(model: Mapping[str, Any], *, month: str) -> dict[str, Any]:
    """Return the extra of a model event: the version, how to load it, its config and promotion decision.

    :param model: the register (or approval) step's result
    :param month: the data month ``YYYY-MM`` it was trained on
    """
    return {
        "registered_model": model["registered_model"], "calendar_version": model["calendar_version"],
        "mlflow_version": model["mlflow_version"],
        "model_uri": f"models:/{model['registered_model']}/{model['mlflow_version']}",
        "config_fingerprint": model["config_fingerprint"], "data_month": month, "role": model["role"],
        "promotion_reason": model["promotion_reason"], "approval": model.get("approval") or None,
        "validation_auc": float(model["validation_auc"]),
    }


def dashboard_extra(*, path: str, run_id: str, month: str) -> dict[str, Any]:
    """Return the extra of a dashboard event: where the page is and which run refreshed it.

    :param path: the rendered file
    :param run_id: the run whose results it now includes
    :param month: that run's data month ``YYYY-MM``
    """
    return {"path": path, "url_path": "/flareflow/", "run_id": run_id, "data_month": month}
