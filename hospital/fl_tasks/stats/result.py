"""Read NVFlare's federated statistics file into the shape flareflow loads and standardizes with.

Categorical data is encoded as 0/1 indicator features (a binary feature such as ``sex``, or one per
category such as ``cp=asymptomatic``; see ``fl_tasks.data.encode_features``). For an indicator feature
the ``sum`` statistic **is the category count**: how many of the counted records have that category
(``count - sum`` have not), and ``mean`` is its share. The warehouse stores it as that feature's ``sum``;
:func:`normalize_result` also lists it under ``categories``. The sites' release rules
(``fl_tasks.stats.privacy``) withhold an indicator wherever its category count or complement falls
below ``privacy.min_count``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fl_tasks.stats.client import DATASET

GLOBAL_KEY = "Global"


def read_result(path: str | Path, features: Sequence[str], indicators: Sequence[str] = ()) -> dict[str, Any]:
    """Read a stats result file and normalize it (see :func:`normalize_result`)."""
    return normalize_result(json.loads(Path(path).read_text()), features, indicators)


def normalize_result(
    raw: Mapping[str, Any], features: Sequence[str], indicators: Sequence[str] = ()
) -> dict[str, Any]:
    """Reshape NVFlare's stats file into ``{features, statistics, histograms, categories, sites}``.

    NVFlare nests feature -> statistic -> site (or ``Global``) -> dataset -> value. A site whose
    statistic the privacy rules withheld is simply absent there.

    :param raw: the parsed stats file
    :param features: the encoded feature names, in model order
    :param indicators: the 0/1 indicator features among them; ``categories`` maps each to its category
        count (its ``sum``) per site and ``global``, where released
    """
    statistics: dict[str, dict[str, dict[str, float]]] = {}
    histograms: dict[str, dict[str, list[list[float]]]] = {}
    sites: set[str] = set()
    for feature in features:
        for statistic, per_site in raw.get(feature, {}).items():
            for site, per_dataset in per_site.items():
                if DATASET not in per_dataset:
                    continue
                key = "global" if site == GLOBAL_KEY else site
                if key != "global":
                    sites.add(site)
                if statistic == "histogram":
                    histograms.setdefault(feature, {})[key] = per_dataset[DATASET]
                else:
                    statistics.setdefault(statistic, {}).setdefault(feature, {})[key] = per_dataset[DATASET]
    sums = statistics.get("sum", {})
    categories = {
        feature: {site: round(value) for site, value in sums[feature].items()}
        for feature in indicators if feature in sums
    }
    return {"features": list(features), "statistics": statistics, "histograms": histograms,
            "categories": categories, "sites": sorted(sites)}


def result_sites(raw: Mapping[str, Any]) -> set[str]:
    """Return the sites named anywhere in a stats result."""
    return {
        site
        for per_stat in raw.values()
        for per_site in per_stat.values()
        for site in per_site
        if site != GLOBAL_KEY
    }
