"""Plotly figures of the dashboard, built from rows of the ``dashboard_*`` materialized views.

Every function takes plain row mappings (as read from the views) and the ordered site names, with the
federation-wide ``global`` site last, and returns a figure; none touches the database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

GLOBAL = "global"
#: the validation metrics shown first, in this order; any others follow alphabetically
METRIC_ORDER: tuple[str, ...] = ("auc", "accuracy", "loss")
_GLOBAL_COLOR = "#222222"
_LAYOUT: dict[str, Any] = {
    "template": "plotly_white",
    "margin": {"l": 60, "r": 20, "t": 60, "b": 60},
    "legend": {"orientation": "h", "y": -0.2},
}

Row = Mapping[str, Any]


def site_colors(sites: Sequence[str]) -> dict[str, str]:
    """Return a stable color per site, dark grey for the global site.

    :param sites: the site names, in display order
    """
    palette = qualitative.Plotly
    hospitals = [site for site in sites if site != GLOBAL]
    colors = {site: palette[index % len(palette)] for index, site in enumerate(hospitals)}
    colors[GLOBAL] = _GLOBAL_COLOR
    return colors


def metric_names(rows: Sequence[Row]) -> list[str]:
    """Return the metrics the rows hold: auc, accuracy and loss first, then any others alphabetically.

    :param rows: ``dashboard_training`` rows
    """
    present = {row["metric"] for row in rows}
    return [m for m in METRIC_ORDER if m in present] + sorted(present.difference(METRIC_ORDER))


def training_figure(rows: Sequence[Row], sites: Sequence[str]) -> go.Figure:
    """Plot each validation metric per round, one line per site.

    :param rows: ``dashboard_training`` rows of one run with ``split = 'validation'``
    :param sites: the site names, in display order
    """
    metrics = metric_names(rows)
    series: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    for row in rows:
        series[(row["site"], row["metric"])].append((int(row["round"]), float(row["value"])))
    colors = site_colors(sites)
    figure = make_subplots(rows=1, cols=len(metrics), subplot_titles=metrics, horizontal_spacing=0.07)
    for column, metric in enumerate(metrics, start=1):
        for site in sites:
            points = sorted(series.get((site, metric), []))
            if not points:
                continue
            figure.add_trace(
                go.Scatter(
                    x=[p[0] for p in points], y=[p[1] for p in points], name=site, legendgroup=site,
                    showlegend=column == 1, mode="lines+markers",
                    line={"color": colors.get(site), "width": 3 if site == GLOBAL else 1.5},
                    hovertemplate=f"{metric} %{{y:.4f}}<br>round %{{x}}<extra>%{{fullData.name}}</extra>",
                ),
                row=1, col=column,
            )
        figure.update_xaxes(title_text="round", row=1, col=column, dtick=1)
    figure.update_layout(height=380, **_LAYOUT)
    return figure


def shap_figure(rows: Sequence[Row], sites: Sequence[str]) -> go.Figure:
    """Plot mean |SHAP| per feature as grouped bars, one bar per site, most important feature first.

    Error bars span one standard error each way: the uncertainty from explaining a sample of the rows
    (none when every row was explained, or for runs loaded before it was recorded).

    :param rows: ``dashboard_shap`` rows of one run
    :param sites: the site names, in display order
    """
    values: dict[str, dict[str, float]] = defaultdict(dict)
    errors: dict[str, dict[str, float | None]] = defaultdict(dict)
    for row in rows:
        values[row["site"]][row["feature"]] = float(row["mean_abs_shap"])
        error = row.get("standard_error")
        errors[row["site"]][row["feature"]] = None if error is None else float(error)
    features = {row["feature"] for row in rows}
    ranking = values.get(GLOBAL) or {
        feature: max(per_site.get(feature, 0.0) for per_site in values.values()) for feature in features
    }
    ordered = sorted(features, key=lambda f: (-ranking.get(f, 0.0), f))
    colors = site_colors(sites)
    figure = go.Figure()
    for site in sites:
        if site not in values:
            continue
        se = [errors[site].get(feature) for feature in ordered]
        known = any(e is not None for e in se)
        figure.add_trace(go.Bar(
            x=ordered, y=[values[site].get(feature) for feature in ordered], name=site,
            marker_color=colors.get(site),
            error_y={"type": "data", "array": [e or 0.0 for e in se], "visible": True, "thickness": 1} if known
            else None,
            customdata=["" if e is None else f" ± {e:.4f}" for e in se],
            hovertemplate="%{x}: %{y:.4f}%{customdata}<extra>%{fullData.name}</extra>",
        ))
    # long one-hot names ("cp=typical angina") take the room they need below; the legend goes above
    figure.update_layout(barmode="group", height=520, yaxis_title="mean |SHAP| (± 1 standard error)",
                         xaxis_tickangle=-55, **{**_LAYOUT, "legend": {"orientation": "h", "y": 1.08}})
    figure.update_xaxes(automargin=True)
    return figure


def global_name(covers: Sequence[str] | None, sites: Sequence[str]) -> str:
    """Return the global histogram's legend name: ``global``, and the hospitals it leaves out, if any.

    :param covers: the hospitals the global histogram sums (None: not recorded)
    :param sites: the site names, in display order
    """
    if covers is None:
        return GLOBAL
    left_out = [site for site in sites if site != GLOBAL and site not in covers]
    return f"{GLOBAL} (without {', '.join(left_out)})" if left_out else GLOBAL


def histogram_figure(rows: Sequence[Row], sites: Sequence[str]) -> go.Figure:
    """Plot each feature's histogram per site as a density, one feature at a time.

    Each site released its own bins (a numeric feature's bins are shared edges, with neighbours merged
    where one would have held too few records), so bins differ in width and from site to site: a bin's
    height is its share of the site's records divided by its width (share per unit of the feature),
    which makes its area the share. A dropdown picks the feature; sites are drawn as step lines so local
    and global shapes compare despite their different record counts. The global line names the hospitals
    it leaves out (``covers`` of its rows).

    :param rows: ``dashboard_histograms`` rows of one run
    :param sites: the site names, in display order
    """
    bins: dict[str, dict[str, list[Row]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        bins[row["feature"]][row["site"]].append(row)
    features = sorted(bins)
    colors = site_colors(sites)
    figure = go.Figure()
    owners: list[str] = []
    for index, feature in enumerate(features):
        for site in sites:
            site_bins = sorted(bins[feature].get(site, []), key=lambda r: r["bin"])
            if not site_bins:
                continue
            total = sum(int(r["count"]) for r in site_bins) or 1
            shares = [int(r["count"]) / total for r in site_bins]
            widths = [float(r["high"]) - float(r["low"]) for r in site_bins]
            densities = [share / width if width > 0 else 0.0 for share, width in zip(shares, widths, strict=True)]
            covers = site_bins[0].get("covers") if site == GLOBAL else None
            figure.add_trace(go.Scatter(
                x=[float(r["low"]) for r in site_bins] + [float(site_bins[-1]["high"])],
                y=[*densities, densities[-1]], mode="lines", line_shape="hv", visible=index == 0,
                name=global_name(covers, sites) if site == GLOBAL else site,
                line={"color": colors.get(site), "width": 3 if site == GLOBAL else 1.5},
                customdata=[[r["low"], r["high"], r["count"], share]
                            for r, share in zip(site_bins, shares, strict=True)] + [[None] * 4],
                hovertemplate="[%{customdata[0]:.4g}, %{customdata[1]:.4g}): %{customdata[2]} records"
                              " (%{customdata[3]:.1%}; %{y:.3~%} per unit)<extra>%{fullData.name}</extra>",
            ))
            owners.append(feature)
    buttons = [
        {"label": feature, "method": "update",
         "args": [{"visible": [owner == feature for owner in owners]}, {"xaxis.title.text": feature}]}
        for feature in features
    ]
    figure.update_layout(
        height=420, yaxis_title="share of records per unit", yaxis_tickformat=".2~%",
        xaxis_title=features[0] if features else None,
        updatemenus=[{"buttons": buttons, "direction": "down", "x": 0, "xanchor": "left", "y": 1.18,
                      "yanchor": "top", "showactive": True}],
        **_LAYOUT,
    )
    return figure
