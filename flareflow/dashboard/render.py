"""Render the researchers' dashboard: one self-contained HTML file from the ``dashboard_*`` views.

What the page shows is read by :func:`flareflow.warehouse.dashboard.read_dashboard` (the latest
successful run of each data month as of the last ``refresh_views``). Panels show the latest data month;
the header shows that month's run (its sites and config fingerprint) and lists the model versions of
every month with their promotion decision (champion or challenger, and why) and the config each month
was computed with, marking the months computed with a config other than the current one (stale: see
``airflow flareflow backfill-stale``).
plotly.js is embedded once, so the file opens without a network.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from psycopg2.extensions import connection as Connection

from flareflow.dashboard import charts
from flareflow.warehouse.dashboard import DashboardData, Row, read_dashboard

GLOBAL = charts.GLOBAL
#: the statistics of the summary table, in column order
SUMMARY_STATISTICS: tuple[str, ...] = ("mean", "stddev", "sum")
WITHHELD = "withheld"
NO_RUN = "No successful run yet."
_CSS = """
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:1rem 2rem;color:#222}
h1{margin-bottom:.2rem} h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem} dt{font-weight:600}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.2rem .5rem}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.withheld{color:#a33;font-style:italic}
.nodata{color:#777;font-style:italic} .scroll{overflow-x:auto} .note{color:#555;font-size:.9em}
td.stale{background:#fff3cd} .stale-note{background:#fff3cd;padding:.4rem .6rem;border-radius:4px}
"""
STALE = "stale"
BACKFILL_COMMAND = "airflow flareflow backfill-stale"

def format_number(value: float | None) -> str:
    """Format a number for a table cell: two decimals with thousands separators, 4 significant digits below 1.

    :param value: the number, or None when the warehouse holds none
    """
    if value is None:
        return "—"
    if value != 0 and abs(value) < 1:
        return f"{value:.4g}"
    return f"{value:,.2f}"


def _e(value: Any) -> str:
    """Return the value as text escaped for HTML content and attributes."""
    return html.escape(str(value), quote=True)


def _month(value: datetime | None) -> str:
    """Return a data month as ``YYYY-MM`` (in UTC, as Airflow's data intervals are)."""
    if value is None:
        return "—"
    return f"{value.astimezone(UTC) if value.tzinfo else value:%Y-%m}"


def _table(table_id: str, head: str, rows: Sequence[Sequence[str]]) -> str:
    """Return a scrollable HTML table from a ready ``<thead>`` row markup and rows of ready cells."""
    body = "".join(f"<tr>{''.join(cells)}</tr>" for cells in rows)
    return (f'<div class="scroll"><table id="{table_id}"><thead>{head}</thead>'
            f"<tbody>{body}</tbody></table></div>")


def _th(*labels: str) -> str:
    """Return one header row of escaped labels."""
    return "<tr>" + "".join(f"<th>{_e(label)}</th>" for label in labels) + "</tr>"


def _td(value: Any, *, numeric: bool = False) -> str:
    """Return an escaped cell; numeric cells go through :func:`format_number`."""
    if numeric:
        return f'<td class="num">{_e(format_number(value))}</td>'
    return f"<td>{_e(value)}</td>"


def _section(section_id: str, title: str, body: str, *, empty: str) -> str:
    """Return a dashboard panel, saying ``empty`` when it has no body."""
    content = body if body else f'<p class="nodata">{_e(empty)}</p>'
    return f'<section id="{section_id}"><h2>{_e(title)}</h2>{content}</section>'


class _Figures:
    """Turn figures into HTML divs, embedding plotly.js in the first one only."""

    def __init__(self) -> None:
        self.embedded = False

    def div(self, figure: go.Figure, div_id: str) -> str:
        """Return the figure as a div and its script.

        :param figure: the figure
        :param div_id: the HTML id of the figure's div
        """
        markup = figure.to_html(full_html=False, include_plotlyjs=not self.embedded, div_id=div_id,
                                config={"displaylogo": False, "responsive": True})
        self.embedded = True
        return markup


def _role(model: Row) -> str:
    """Return a version's promotion role, or that it awaits approval."""
    return model.get("role") or ("awaiting approval" if model.get("approval") == "awaiting" else "")


def _version_label(model: Row | None) -> str:
    """Return a model version with its promotion role, e.g. ``2026.03.2 (challenger)``."""
    if model is None:
        return "—"
    role = _role(model)
    return f"{model['calendar_version']} ({role})" if role else str(model["calendar_version"])


def _config_cell(data: DashboardData, model: Row) -> str:
    """Return a month's config cell: its fingerprint, marked when it is not the current config's."""
    fingerprint = str(model["config_fingerprint"])
    if not data.is_stale(model):
        return f'<td title="{_e(fingerprint)}"><code>{_e(fingerprint[:12])}</code></td>'
    why = f"computed with config {fingerprint}; the current config is {data.current_fingerprint}"
    return (f'<td class="stale" title="{_e(why)}"><code>{_e(fingerprint[:12])}</code> '
            f"<strong>{STALE}</strong></td>")


def _stale_note(data: DashboardData) -> str:
    """Return the note naming the months computed with another config, and how to recompute them."""
    months = data.stale_months
    if not months:
        return ""
    current = str(data.current_fingerprint)[:12]
    return (f'<p id="stale-months" class="stale-note">{len(months)} month(s) computed with a config other than '
            f"the current one (<code>{_e(current)}</code>): {_e(', '.join(_month(m) for m in months))}. "
            f"<code>{_e(BACKFILL_COMMAND)}</code> recomputes exactly these.</p>")


def _header(data: DashboardData, title: str) -> str:
    """Return the page header: the latest run (its model version, sites, config) and every month's version."""
    model = data.latest_model
    fingerprint = data.config_fingerprint or ""
    facts = [
        ("Model version", _version_label(model)),
        ("Data month", _month(data.data_month)),
        ("Sites", ", ".join(data.run_sites) if data.run_sites else "—"),
    ]
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    items += f'<dt>Config</dt><dd title="{_e(fingerprint)}"><code>{_e(fingerprint[:12] or "—")}</code></dd>'
    history = _table("model-history", _th("Data month", "Version", "Registered model", "MLflow version",
                                          "Promotion", "Validation AUC", "Why", "Sites", "Config",
                                          "Registered at"), [
        [_td(_month(m["data_interval_start"])), _td(m["calendar_version"]), _td(m["registered_model"]),
         _td(m["mlflow_version"]), _td(_role(m) or "—"), _td(m.get("validation_auc"), numeric=True),
         _td(m.get("promotion_reason") or "—"), _td(", ".join(m["sites"])), _config_cell(data, m),
         _td(f"{m['created_at'].astimezone(UTC):%Y-%m-%d %H:%M} UTC")]
        for m in data.models
    ]) if data.models else ""
    status = "" if data.run_id else f'<p class="nodata">{_e(NO_RUN)}</p>'
    return (f'<header id="run-summary"><h1>{_e(title)}</h1>{status}<dl>{items}</dl>{_stale_note(data)}{history}'
            "</header>")


def _training(data: DashboardData, figures: _Figures) -> str:
    """Return the validation curves and the table of test metrics per site."""
    validation = [row for row in data.training if row["split"] == "validation"]
    test = [row for row in data.training if row["split"] == "test"]
    parts = []
    if validation:
        parts.append(figures.div(charts.training_figure(validation, data.sites), "training-curves-chart"))
    if test:
        metrics = charts.metric_names(test)
        values = {(row["site"], row["metric"]): row["value"] for row in test}
        sites = [s for s in data.sites if any(row["site"] == s for row in test)]
        parts.append("<h3>Test metrics (final model)</h3>" + _table("test-metrics", _th("site", *metrics), [
            [_td(site), *(_td(values.get((site, m)), numeric=True) for m in metrics)] for site in sites
        ]))
    return "".join(parts)


def _summary_cell(cell: Row | None) -> str:
    """Return one statistic's cell: its value, or "withheld" when the privacy rules kept it back."""
    if cell is not None and cell["withheld"]:
        return f'<td class="num withheld" title="withheld by the privacy rules">{WITHHELD}</td>'
    return _td(cell["value"] if cell else None, numeric=True)


def _summary(data: DashboardData) -> str:
    """Return the table of mean, stddev and sum per feature (rows) and site (column groups)."""
    if not data.stats:
        return ""
    cells = {(r["site"], r["feature"], r["statistic"]): r for r in data.stats}
    sites = [s for s in data.sites if any(r["site"] == s for r in data.stats)]
    span = len(SUMMARY_STATISTICS)
    head = ('<tr><th rowspan="2">feature</th>'
            + "".join(f'<th colspan="{span}">{_e(site)}</th>' for site in sites) + "</tr>"
            + _th(*(stat for _ in sites for stat in SUMMARY_STATISTICS)))
    return _table("feature-summary-table", head, [
        [_td(feature), *(_summary_cell(cells.get((site, feature, stat)))
                         for site in sites for stat in SUMMARY_STATISTICS)]
        for feature in sorted({r["feature"] for r in data.stats})
    ])


def _share(value: float | None) -> str:
    """Return a share as a percentage (one decimal), or a dash when there is none."""
    return "—" if value is None else f"{value:.1%}"


def _count(value: int | None) -> str:
    """Return a count cell (thousands separated), or a dash cell when there is none."""
    return f'<td class="num">{_e("—" if value is None else f"{int(value):,}")}</td>'


def _quality(data: DashboardData) -> str:
    """Return the data check's findings: each hospital's records, and the missing share per column and hospital."""
    if not data.quality:
        return ""
    sites = [s for s in data.sites if any(row["site"] == s for row in data.quality)]
    totals = {row["site"]: row for row in data.quality}
    per_site = _table("data-quality-sites", _th("hospital", "file", "rows in file", "rows in window",
                                                "label classes", "labels missing", "duplicated ids"), [
        [_td(site), _td(totals[site]["file_status"]), _count(totals[site]["rows_in_file"]),
         _count(totals[site]["rows_in_window"]), _td(", ".join(str(c) for c in totals[site]["label_classes"]) or "—"),
         _count(totals[site]["label_missing"]), _count(totals[site]["duplicated_ids"])]
        for site in sites
    ])
    cells = {(row["site"], row["column_name"]): row for row in data.quality}
    columns = list(dict.fromkeys((row["column_name"], row["kind"]) for row in data.quality))
    missing = _table("data-quality-columns", _th("column", "kind", *sites), [
        [_td(column), _td(kind), *(_td(_share(cells[(site, column)]["missing_share"])) if (site, column) in cells
                                   else _td("—") for site in sites)]
        for column, kind in columns
    ])
    return f"{per_site}<h3>Missing values per column (share of the run's records)</h3>{missing}"


def _shap_sampling(data: DashboardData) -> str:
    """Return how many rows each hospital explained out of how many it holds, and the largest standard error."""
    scopes = {row["site"]: row for row in data.shap}
    worst: dict[str, float] = {}
    for row in data.shap:
        if row.get("standard_error") is not None:
            worst[row["site"]] = max(worst.get(row["site"], 0.0), float(row["standard_error"]))
    note = ('<p class="note">Error bars: ± 1 standard error of mean |SHAP|, from explaining a sample of each '
            "hospital's rows (shap.max_rows, stratified by label); 0 when every row was explained. The global "
            "importance weights each hospital by every row it holds.</p>")
    return note + _table("feature-importance-sampling", _th("hospital", "rows explained", "rows held",
                                                            "largest standard error"), [
        [_td(site), _count(scopes[site]["n_samples"]), _count(scopes[site].get("n_rows")),
         _td(worst.get(site), numeric=True)]
        for site in data.sites if site in scopes
    ])


def dashboard_html(data: DashboardData, *, title: str) -> str:
    """Return the dashboard page for already-read data.

    :param data: what :func:`read_dashboard` returned
    :param title: the page title
    """
    figures = _Figures()  # built in page order: the first figure carries plotly.js for the rest
    training = _training(data, figures)
    shap = figures.div(charts.shap_figure(data.shap, data.sites), "feature-importance-chart") \
        + _shap_sampling(data) if data.shap else ""
    hist = figures.div(charts.histogram_figure(data.histograms, data.sites), "feature-distributions-chart") \
        if data.histograms else ""
    month = f" ({_month(data.data_month)})" if data.run_id else ""
    empty = "No data for this month." if data.run_id else f"No data: {NO_RUN.lower()}"
    sections = [
        _section("data-quality", f"Data quality per hospital{month}", _quality(data), empty=empty),
        _section("training-curves", f"Training: validation metrics per round{month}", training, empty=empty),
        _section("feature-importance", f"Feature importance: mean |SHAP|{month}", shap, empty=empty),
        _section("feature-distributions", f"Feature distributions: local vs global{month}", hist,
                 empty=empty),
        _section("feature-summary", f"Feature summary: mean, stddev and sum per site{month}",
                 _summary(data), empty=empty),
    ]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<style>{_CSS}</style></head><body>{_header(data, title)}{''.join(sections)}</body></html>\n")


def render_dashboard(conn: Connection, out_path: Path, *, current_fingerprint: str | None = None,
                     title: str = "flareflow: the federated model") -> Path:
    """Render the dashboard from the warehouse's dashboard views into one HTML file; return its path.

    The file is replaced atomically, so a reader never sees half a page.

    :param conn: warehouse connection
    :param out_path: where to write the HTML file
    :param current_fingerprint: the current config's fingerprint (None: months are not compared with it)
    :param title: the page title
    """
    page = dashboard_html(read_dashboard(conn, current_fingerprint), title=title)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(f".{out_path.name}.partial")
    partial.write_text(page, encoding="utf-8")
    partial.replace(out_path)
    return out_path
