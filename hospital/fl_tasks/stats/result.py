"""Read NVFlare's federated statistics file into the shape flareflow loads and standardizes with.

Categorical data is encoded as 0/1 indicator features (a binary feature such as ``sex``, or one per
category such as ``cp=asymptomatic``; see ``fl_tasks.data.encode_features``). For an indicator feature
the ``sum`` statistic **is the category count**: how many of the counted records have that category
(``count - sum`` have not), and ``mean`` is its share. The warehouse stores it as that feature's ``sum``;
:func:`normalize_result` also lists it under ``categories``. The sites' release rules
(``fl_tasks.stats.privacy``) withhold an indicator wherever its category count or complement falls
below ``privacy.min_count``.

Histograms: a site's histogram has the bins that site released (numeric features: the shared edges,
with neighbours merged where a bin would have been small; see ``fl_tasks.stats.bins``), so bins may
differ in width and from site to site. The global histogram sums the sites' bins over the cuts they all
kept, and ``histogram_sites`` names the sites it covers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fl_tasks.stats.client import DATASET

GLOBAL_KEY = "Global"
#: the result file's entry, beside a feature's statistics, naming the sites its global histogram covers
HISTOGRAM_SITES = "histogram_sites"


def read_result(path: str | Path, features: Sequence[str], indicators: Sequence[str] = ()) -> dict[str, Any]:
    """Read a stats result file and normalize it (see :func:`normalize_result`)."""
    return normalize_result(json.loads(Path(path).read_text()), features, indicators)


def normalize_result(
    raw: Mapping[str, Any], features: Sequence[str], indicators: Sequence[str] = ()
) -> dict[str, Any]:
    """Reshape NVFlare's stats file into ``{features, statistics, histograms, histogram_sites, categories, sites}``.

    NVFlare nests feature -> statistic -> site (or ``Global``) -> dataset -> value. A site whose
    statistic the privacy rules withheld is simply absent there.

    :param raw: the parsed stats file
    :param features: the encoded feature names, in model order
    :param indicators: the 0/1 indicator features among them; ``categories`` maps each to its category
        count (its ``sum``) per site and ``global``, where released
    :returns: ``histogram_sites`` maps each feature with a global histogram to the sites it covers
    """
    statistics: dict[str, dict[str, dict[str, float]]] = {}
    histograms: dict[str, dict[str, list[list[float]]]] = {}
    histogram_sites: dict[str, list[str]] = {}
    sites: set[str] = set()
    for feature in features:
        covered = raw.get(feature, {}).get(HISTOGRAM_SITES, {}).get(GLOBAL_KEY, {})
        if DATASET in covered:
            histogram_sites[feature] = sorted(covered[DATASET])
        for statistic, per_site in raw.get(feature, {}).items():
            if statistic == HISTOGRAM_SITES:
                continue
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
            "histogram_sites": histogram_sites, "categories": categories, "sites": sorted(sites)}


def result_sites(raw: Mapping[str, Any]) -> set[str]:
    """Return the sites named anywhere in a stats result."""
    return {
        site
        for per_stat in raw.values()
        for per_site in per_stat.values()
        for site in per_site
        if site != GLOBAL_KEY
    }
