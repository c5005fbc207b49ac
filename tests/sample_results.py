"""Realistic job results (statistics, training, SHAP) and Airflow runs for the warehouse and dashboard tests.

Shaped like the UCI heart disease sites; import from a test module as ``from sample_results import ...``
(pytest's rootdir-based import puts ``tests/`` on ``sys.path`` through ``tests/conftest.py``).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any, Literal

from flareflow.warehouse.loaders import RunInfo

SITES = ("cleveland", "hungary", "switzerland", "va-long-beach")
SCOPES = (*SITES, "global")
STATISTICS = ("count", "sum", "mean", "stddev")
MODEL = "flareflow-heart-disease"
#: per site and feature: (count, mean, stddev), shaped like the UCI heart disease sites.
#: switzerland records no cholesterol (0 = missing), so its chol statistics are withheld by the privacy filter.
SITE_STATS: dict[str, dict[str, tuple[int, float, float]]] = {
    "cleveland": {"age": (304, 54.35, 9.08), "chol": (304, 246.5, 51.83), "oldpeak": (304, 1.04, 1.16),
                  "thalch": (304, 149.65, 22.91), "trestbps": (304, 131.62, 17.54)},
    "hungary": {"age": (293, 47.89, 7.74), "chol": (270, 250.85, 67.66), "oldpeak": (293, 0.59, 0.91),
                "thalch": (292, 139.13, 23.59), "trestbps": (292, 132.58, 17.63)},
    "switzerland": {"age": (123, 55.32, 9.03), "oldpeak": (117, 0.65, 1.06),
                    "thalch": (122, 121.56, 25.98), "trestbps": (121, 130.21, 22.56)},
    "va-long-beach": {"age": (200, 59.35, 7.81), "chol": (144, 245.38, 56.98),
                      "oldpeak": (144, 1.32, 1.11), "thalch": (147, 122.80, 21.74),
                      "trestbps": (144, 133.76, 21.54)},
}
FEATURES = ("age", "chol", "oldpeak", "thalch", "trestbps")
BINS = 10
SHAP_FEATURES = ("age", "trestbps", "chol", "thalch", "oldpeak", "sex", "fbs", "exang",
                 "cp=typical angina", "cp=atypical angina", "cp=non-anginal", "cp=asymptomatic",
                 "restecg=normal", "restecg=st-t abnormality", "restecg=lv hypertrophy")
ROUNDS = 5


def _normal_counts(count: int, mean: float, std: float, bins: list[tuple[float, float]]) -> list[int]:
    """Spread ``count`` records over ``bins`` like a normal distribution (rounded per bin)."""
    weights = [math.exp(-(((a + b) / 2 - mean) / std) ** 2 / 2) for a, b in bins]
    return [round(count * w / sum(weights)) for w in weights]


def stats_result(shift: float = 0.0, *, histogram: Literal["flat", "normal"] = "flat") -> dict[str, Any]:
    """Return a normalized statistics job result: every site's values, pooled global values, histograms.

    A withheld statistic's site is absent, as NVFlare's privacy filter leaves it.

    :param shift: added to every mean (and so every sum)
    :param histogram: ``"flat"``: each site's (and the global) count split evenly over :data:`BINS`
        bins, ``count // BINS`` each; ``"normal"``: each site's count spread like a normal
        distribution, the global histogram their sum
    """
    statistics: dict[str, dict[str, dict[str, float]]] = {s: {f: {} for f in FEATURES} for s in STATISTICS}
    histograms: dict[str, dict[str, list[list[float]]]] = {f: {} for f in FEATURES}
    for feature in FEATURES:
        parts = {site: values[feature] for site, values in SITE_STATS.items() if feature in values}
        for site, (count, mean, std) in parts.items():
            statistics["count"][feature][site] = count
            statistics["sum"][feature][site] = count * (mean + shift)
            statistics["mean"][feature][site] = mean + shift
            statistics["stddev"][feature][site] = std
        total = sum(c for c, _, _ in parts.values())
        pooled = sum(c * (m + shift) for c, m, _ in parts.values()) / total
        spread = sum((c - 1) * s * s + c * (m + shift - pooled) ** 2 for c, m, s in parts.values())
        statistics["count"][feature]["global"] = total
        statistics["sum"][feature]["global"] = pooled * total
        statistics["mean"][feature]["global"] = pooled
        statistics["stddev"][feature]["global"] = math.sqrt(spread / (total - 1))
        low = min(m - 3 * s for _, m, s in parts.values())
        width = (max(m + 3 * s for _, m, s in parts.values()) - low) / BINS
        bins = list(pairwise(low + i * width for i in range(BINS + 1)))
        if histogram == "flat":
            counts = {site: [count // BINS] * BINS for site, (count, _, _) in parts.items()}
            counts["global"] = [total // BINS] * BINS
        else:
            counts = {site: _normal_counts(count, mean, std, bins) for site, (count, mean, std) in parts.items()}
            counts["global"] = [sum(per_bin) for per_bin in zip(*counts.values(), strict=True)]
        for scope, per_bin in counts.items():
            histograms[feature][scope] = [[a, b, n] for (a, b), n in zip(bins, per_bin, strict=True)]
    covers = {feature: sorted(site for site, values in SITE_STATS.items() if feature in values) for feature in FEATURES}
    return {"features": list(FEATURES), "statistics": statistics, "histograms": histograms,
            "histogram_sites": covers, "sites": list(SITES)}


def training_result(rounds: int = ROUNDS, shift: float = 0.0,
                    test: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
    """Return a training job result: validation metrics per round and scope, test metrics per scope.

    Like the FedAvg controller's: rounds ``0 .. rounds - 1``, then round ``rounds`` validates the final
    model, whose test metrics belong to ``final_round``.

    :param shift: added to every auc
    :param test: the test metrics per scope; by default auc ``0.85 - 0.01 * index + shift`` (0.81 for
        global), accuracy 0.8, loss 0.42
    """
    def metrics(index: int, r: int) -> dict[str, float]:
        auc = 0.9 - 0.02 * index - 0.25 * math.exp(-r / 2) + shift
        return {"auc": auc, "accuracy": auc - 0.06, "loss": 0.35 + 0.4 * math.exp(-r / 2) + 0.01 * index}

    if test is None:
        test = {s: {"auc": 0.85 - 0.01 * i + shift, "accuracy": 0.8, "loss": 0.42} for i, s in enumerate(SCOPES)}
    return {
        "rounds": [{"round": r, "metrics": {s: metrics(i, r) for i, s in enumerate(SCOPES)}}
                   for r in range(rounds + 1)],
        "final_round": rounds,
        "test": test,
    }


def shap_result(shift: float = 0.0) -> dict[str, Any]:
    """Return a SHAP job result: the encoded features' mean |SHAP| (4 decimals) per site and global.

    The first site explained a sample, 40 of its 120 rows (standard error 0.01 / rank); the others every
    one of their 40 rows (standard error 0); globally 160 of 240 rows, the first site weighing half.

    :param shift: added to every importance (global age: 0.34 + shift)
    """
    def scope(index: int, n: int, rows: int, error: float) -> dict[str, Any]:
        return {"n_samples": n, "rows": rows,
                "mean_abs_shap": [round(0.3 / (k + 1) + 0.01 * index + shift, 4) for k in range(len(SHAP_FEATURES))],
                "se": [round(error / (k + 1), 6) for k in range(len(SHAP_FEATURES))]}

    sites = {s: scope(i, 40, 120, 0.01) if i == 0 else scope(i, 40, 40, 0.0) for i, s in enumerate(SITES)}
    return {"features": list(SHAP_FEATURES), "sites": sites, "global": scope(len(SITES), 160, 240, 0.005)}


#: the data check's columns per site, as the demo's contract lists them (id, date, label, features)
CHECK_COLUMNS: dict[str, str] = {
    "id": "id", "admission_date": "date", "num": "label", "age": "numeric", "thalch": "numeric",
    "oldpeak": "numeric", "trestbps": "zero_means_missing", "chol": "zero_means_missing", "exang": "binary",
    "fbs": "binary", "sex": "binary", "cp": "categorical", "restecg": "categorical",
}


def data_check_result(shift: float = 0.0) -> dict[str, Any]:
    """Return a data check job result: each site's report on a file that keeps the contract.

    Rows in the file follow :data:`SITE_STATS` (the ``age`` count); missing shares come from the
    features' counts there (``chol`` is entirely missing in switzerland), plus ``shift``.

    :param shift: added to every missing share
    """
    sites = {}
    for index, (site, features) in enumerate(SITE_STATS.items()):
        rows = features["age"][0]
        columns = {}
        for column, kind in CHECK_COLUMNS.items():
            counted = features.get(column, (0, 0, 0))[0] if column in FEATURES else rows
            columns[column] = {"kind": kind, "unparseable": 0, "unknown": 0,
                               "missing_share": round(1 - counted / rows + shift, 6)}
        sites[site] = {
            "file": "found", "reason": None, "file_name": "heart.csv", "delimiter": ",",
            "date_column": "admission_date", "date_format": None, "until": "2025-04-01", "window_months": None,
            "suspected_delimiter": None, "rows_in_file": rows + 10 * index, "rows_in_window": rows,
            "missing_columns": [], "columns": columns, "label_classes": [0, 1], "label_missing": index,
            "duplicated_ids": 0,
        }
    return {"sites": sites}


def make_run(year: int, month: int, suffix: str = "", *, day: int = 1, hour: int = 3) -> RunInfo:
    """Return the monthly run of that data month (``suffix`` tells apart re-runs of the month)."""
    start = datetime(year, month, day, hour, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, day, hour, tzinfo=UTC)
    return RunInfo(run_id=f"scheduled__{end.isoformat()}{suffix}", dag_id="federated_retraining",
                   data_interval_start=start, data_interval_end=end,
                   config_fingerprint=f"{year:04d}{month:02d}" + "ab12cd34ef56" * 5, sites=SITES)
