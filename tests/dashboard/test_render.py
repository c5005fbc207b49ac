"""The dashboard renders what the loaders wrote, for successful runs only, from a real PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from psycopg2.extensions import connection as Connection
from sample_results import (
    CHECK_COLUMNS,
    MODEL,
    SITES,
    data_check_result,
    make_run,
    shap_result,
    stats_result,
    training_result,
)

from flareflow.dashboard.render import render_dashboard
from flareflow.warehouse.loaders import (
    RunInfo,
    load_data_quality,
    load_shap,
    load_stats,
    load_training,
    mark_run_succeeded,
    refresh_views,
)

Render = Callable[..., str]
SECTIONS = ("data-quality", "training-curves", "feature-importance", "feature-distributions", "feature-summary")
#: the final model's test metrics per scope, as the test-metrics table shows them
TEST_METRICS = {"cleveland": {"auc": 0.8734, "accuracy": 0.8033, "loss": 0.4121},
                "hungary": {"auc": 0.8512, "accuracy": 0.7966, "loss": 0.4433},
                "switzerland": {"auc": 0.6250, "accuracy": 0.8800, "loss": 0.3890},
                "va-long-beach": {"auc": 0.7021, "accuracy": 0.7250, "loss": 0.5874},
                "global": {"auc": 0.8912, "accuracy": 0.8152, "loss": 0.4207}}


def _run(year: int, month: int, suffix: str = "") -> RunInfo:
    """Return the month's run, starting at midnight UTC (the edge of the data month)."""
    return make_run(year, month, suffix, hour=0)


def _load(conn: Connection, run: RunInfo, *, shift: float = 0.0, n: int = 1, succeed: bool = True,
          register: bool = True) -> None:
    """Load a whole run's results as the DAG does, maybe register its model version, maybe succeed it."""
    load_data_quality(conn, run, data_check_result(shift / 100))
    load_stats(conn, run, stats_result(shift, histogram="normal"))
    load_training(conn, run, training_result(test=TEST_METRICS))
    load_shap(conn, run, shap_result())
    start = run.data_interval_start
    if register:
        with conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO model_versions (run_id, registered_model, year, month, n, calendar_version,"
                " mlflow_version, mlflow_run_id, config_fingerprint)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (run.run_id, MODEL, start.year, start.month, n, f"{start:%Y.%m}.{n}", str(start.month + n),
                 "abc123", run.config_fingerprint),
            )
    if succeed:
        mark_run_succeeded(conn, run.run_id)


class _TableReader(HTMLParser):
    """Collect the text of every cell of the table with a given id, row by row."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id, self.inside = table_id, False
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.inside = dict(attrs).get("id") == self.table_id
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = False
        elif self.inside and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def _table(page: str, table_id: str) -> list[list[str]]:
    reader = _TableReader(table_id)
    reader.feed(page)
    assert reader.rows, f"no table {table_id!r} in the page"
    return reader.rows


def _section(page: str, section_id: str) -> str:
    match = re.search(rf'<section id="{section_id}">(.*?)</section>', page, re.S)
    assert match, f"no section {section_id!r}"
    return match.group(1)


def _summary_cell(page: str, feature: str, site: str, statistic: str) -> str:
    """Return the summary table's text for one feature, site and statistic, found by its headers."""
    rows = _table(page, "feature-summary-table")
    sites, statistics = rows[0][1:], rows[1]
    column = 1 + sites.index(site) * 3 + statistics[sites.index(site) * 3:].index(statistic)
    return next(row for row in rows[2:] if row[0] == feature)[column]


@pytest.fixture
def render(tmp_path: Path, warehouse: Connection) -> Render:
    """Refresh the views and render the dashboard; return the page's text."""
    def _render(**kwargs: Any) -> str:
        refresh_views(warehouse)
        return render_dashboard(warehouse, tmp_path / "out" / "dashboard.html", **kwargs).read_text()

    return _render


def test_renders_the_latest_successful_month(warehouse: Connection, render: Render) -> None:
    _load(warehouse, _run(2025, 2), shift=10.0)
    _load(warehouse, _run(2025, 3))
    page = render()
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    header = page[page.index('<header id="run-summary">'):page.index("</header>")]
    assert "2025.03.1" in header.split('id="model-history"')[0]  # the latest version, above the history
    assert "2025-03" in header and "202503ab12cd" in header
    history = _table(page, "model-history")
    assert [row[:2] for row in history[1:]] == [["2025-03", "2025.03.1"], ["2025-02", "2025.02.1"]]
    for site in SITES:
        assert site in header
        assert site in _section(page, "feature-summary")
        assert f'"name":"{site}"' in _section(page, "training-curves")
        assert f'"name":"{site}"' in _section(page, "feature-importance")
        assert f'"name":"{site}"' in _section(page, "feature-distributions")
    assert "No data" not in page


def test_summary_shows_loaded_numbers_and_withheld(warehouse: Connection, render: Render) -> None:
    _load(warehouse, _run(2025, 2), shift=10.0)
    _load(warehouse, _run(2025, 3))
    page = render()
    assert _table(page, "feature-summary-table")[0] == ["feature", *SITES, "global"]
    assert _summary_cell(page, "age", "cleveland", "mean") == "54.35"  # not February's 64.35
    assert _summary_cell(page, "age", "cleveland", "stddev") == "9.08"
    assert _summary_cell(page, "age", "cleveland", "sum") == "16,522.40"
    assert _summary_cell(page, "oldpeak", "hungary", "mean") == "0.59"
    assert _summary_cell(page, "age", "global", "mean") == "53.51"
    assert _summary_cell(page, "age", "global", "sum") == "49,228.53"
    for statistic in ("mean", "stddev", "sum"):
        assert _summary_cell(page, "chol", "switzerland", statistic) == "withheld"
        assert _summary_cell(page, "chol", "hungary", statistic) not in ("withheld", "", "0", "0.00")
    assert "64.35" not in _section(page, "feature-summary")


def test_data_quality_shows_each_hospitals_records_and_missing_shares(warehouse: Connection, render: Render) -> None:
    _load(warehouse, _run(2025, 2), shift=10.0)  # an older month's shares are 0.1 higher
    _load(warehouse, _run(2025, 3))
    page = render()
    assert "Data quality per hospital (2025-03)" in _section(page, "data-quality")
    assert _table(page, "data-quality-sites") == [
        ["hospital", "file", "rows in file", "rows in window", "label classes", "labels missing", "duplicated ids"],
        ["cleveland", "found", "304", "304", "0, 1", "0", "0"],
        ["hungary", "found", "303", "293", "0, 1", "1", "0"],
        ["switzerland", "found", "143", "123", "0, 1", "2", "0"],
        ["va-long-beach", "found", "230", "200", "0, 1", "3", "0"],
    ]
    shares = _table(page, "data-quality-columns")
    assert shares[0] == ["column", "kind", *SITES]
    assert [row[:2] for row in shares[1:]] == [list(item) for item in CHECK_COLUMNS.items()]  # contract order
    assert next(row for row in shares if row[0] == "chol")[2:] == ["0.0%", "7.8%", "100.0%", "28.0%"]
    assert next(row for row in shares if row[0] == "age")[2:] == ["0.0%"] * 4


def test_training_panel_shows_test_metrics(warehouse: Connection, render: Render) -> None:
    _load(warehouse, _run(2025, 3))
    page = render()
    table = _table(page, "test-metrics")
    assert table[0] == ["site", "auc", "accuracy", "loss"]
    assert table[1:] == [["cleveland", "0.8734", "0.8033", "0.4121"],
                         ["hungary", "0.8512", "0.7966", "0.4433"],
                         ["switzerland", "0.625", "0.88", "0.389"],
                         ["va-long-beach", "0.7021", "0.725", "0.5874"],
                         ["global", "0.8912", "0.8152", "0.4207"]]
    curves = _section(page, "training-curves")
    assert '"name":"global"' in curves and '"text":"auc"' in curves and '"text":"loss"' in curves


def test_feature_importance_shows_its_standard_error_and_the_rows_explained(
    warehouse: Connection, render: Render
) -> None:
    _load(warehouse, _run(2025, 3))
    page = render()
    assert _table(page, "feature-importance-sampling") == [
        ["hospital", "rows explained", "rows held", "largest standard error"],
        ["cleveland", "40", "120", "0.01"],
        ["hungary", "40", "40", "0.00"],
        ["switzerland", "40", "40", "0.00"],
        ["va-long-beach", "40", "40", "0.00"],
        ["global", "160", "240", "0.005"]]
    importance = _section(page, "feature-importance")
    assert "standard error" in importance
    # error bars: cleveland's age bar spans 0.01 each way, the global one 0.005
    assert '"error_y":{"array":[0.01,' in importance and '"error_y":{"array":[0.005,' in importance
    assert r'" \u00b1 0.0100"' in importance  # the hover text, JSON-escaped


def test_page_is_self_contained(warehouse: Connection, render: Render) -> None:
    _load(warehouse, _run(2025, 3))
    page = render(title="<script>alert(1)</script> & co")
    assert page.count("window.PlotlyConfig") == 1  # plotly.js is inlined exactly once
    assert not re.search(r"<script[^>]*\bsrc=", page)
    assert page.index("window.PlotlyConfig") < page.index('id="training-curves-chart"')
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt; &amp; co</title>" in page
    assert "<script>alert(1)" not in page


def test_empty_warehouse_says_no_run_yet(warehouse: Connection, render: Render) -> None:
    page = render()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "No successful run yet" in page
    for section in SECTIONS:
        assert "No data" in _section(page, section)
    assert "window.PlotlyConfig" not in page


def test_run_not_marked_successful_is_hidden(warehouse: Connection, render: Render) -> None:
    _load(warehouse, _run(2025, 3))
    _load(warehouse, _run(2025, 4), shift=20.0, succeed=False)
    page = render()
    assert "2025.04.1" not in page and "2025-04" not in page
    assert "2025.03.1" in page
    assert _summary_cell(page, "age", "cleveland", "mean") == "54.35"


def test_only_unsuccessful_runs_render_as_empty(warehouse: Connection, render: Render) -> None:
    _load(warehouse, _run(2025, 3), succeed=False)
    page = render()
    assert "No successful run yet" in page and "2025.03.1" not in page
    for section in SECTIONS:
        assert "No data" in _section(page, section)


def test_rerun_of_a_month_replaces_it(warehouse: Connection, render: Render) -> None:
    _load(warehouse, _run(2025, 3))
    rerun = _run(2025, 3, suffix="__manual")
    _load(warehouse, rerun, shift=1.0, n=2)  # the re-run's model got the month's next number
    page = render()
    assert _summary_cell(page, "age", "cleveland", "mean") == "55.35"
    assert [row[:2] for row in _table(page, "model-history")[1:]] == [["2025-03", "2025.03.2"]]


def _header(page: str) -> dict[str, str]:
    """Return the header's facts (``<dt>`` label to ``<dd>`` text)."""
    header = page[page.index('<header id="run-summary">'):page.index("</header>")]
    return {label: re.sub(r"<[^>]+>", "", value)
            for label, value in re.findall(r"<dt>(.*?)</dt><dd[^>]*>(.*?)</dd>", header, re.S)}


def test_header_shows_the_run_even_without_a_model(warehouse: Connection, render: Render) -> None:
    _load(warehouse, _run(2025, 2), shift=10.0)
    three_sites = RunInfo(**{**vars(_run(2025, 3)), "sites": ("hungary", "cleveland", "va-long-beach")})
    _load(warehouse, three_sites, register=False)
    facts = _header(render())
    assert facts == {"Model version": "—", "Data month": "2025-03",
                     "Sites": "hungary, cleveland, va-long-beach", "Config": "202503ab12cd"}


def test_header_month_is_the_utc_data_month(warehouse: Connection, render: Render) -> None:
    run = _run(2025, 3)
    with warehouse, warehouse.cursor() as cur:
        cur.execute("SET TimeZone = 'America/Los_Angeles'")  # March 1st 00:00 UTC is February 28th there
    _load(warehouse, run)
    facts = _header(render())
    assert facts["Data month"] == "2025-03" and facts["Model version"] == "2025.03.1"
    assert facts["Sites"] == ", ".join(SITES)


def _decide(conn: Connection, run: RunInfo, role: str, reason: str, auc: float) -> None:
    """Record a promotion decision for the run's model version, as the registry does."""
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE model_versions SET role = %s, promotion_reason = %s, validation_auc = %s,"
                    " decided_at = now() WHERE run_id = %s", (role, reason, auc, run.run_id))


def test_model_history_shows_each_versions_promotion(warehouse: Connection, render: Render) -> None:
    february, march = _run(2025, 2), _run(2025, 3)
    _load(warehouse, february)
    _load(warehouse, march)
    reason = "validation AUC 0.812 < champion 2025.02.1's 0.850 - tolerance 0.010"
    _decide(warehouse, february, "champion", "first version: no champion yet", 0.85)
    _decide(warehouse, march, "challenger", reason, 0.812)
    page = render()
    history = _table(page, "model-history")
    columns = history[0]
    assert columns[4:7] == ["Promotion", "Validation AUC", "Why"]
    assert [row[1:2] + row[4:7] for row in history[1:]] == [
        ["2025.03.1", "challenger", "0.812", reason],
        ["2025.02.1", "champion", "0.85", "first version: no champion yet"],
    ]
    assert _header(page)["Model version"] == "2025.03.1 (challenger)"


def test_model_history_without_a_decision(warehouse: Connection, render: Render) -> None:
    _load(warehouse, _run(2025, 3))
    page = render()
    assert _table(page, "model-history")[1][4:7] == ["—", "—", "—"]
    assert _header(page)["Model version"] == "2025.03.1"


def test_history_marks_the_months_computed_with_another_config(warehouse: Connection, render: Render) -> None:
    _load(warehouse, _run(2025, 2))
    _load(warehouse, _run(2025, 3))
    march = _run(2025, 3).config_fingerprint
    page = render(current_fingerprint=march)
    history = _table(page, "model-history")
    config = history[0].index("Config")
    assert [(row[0], row[config]) for row in history[1:]] == [
        ("2025-03", march[:12]), ("2025-02", f"{_run(2025, 2).config_fingerprint[:12]} stale")]
    note = re.search(r'<p id="stale-months"[^>]*>(.*?)</p>', page, re.S)
    assert note and "1 month(s)" in note.group(1) and "2025-02" in note.group(1) and "2025-03" not in note.group(1)
    assert "airflow flareflow backfill-stale" in note.group(1)
    # every month on the current config: nothing marked, no note
    page = render(current_fingerprint=None)
    assert "stale" not in _table(page, "model-history")[1][config] and 'id="stale-months"' not in page


def test_a_version_awaiting_approval_says_so(warehouse: Connection, render: Render) -> None:
    _load(warehouse, _run(2025, 3))
    with warehouse, warehouse.cursor() as cur:
        cur.execute("UPDATE model_versions SET approval = 'awaiting', promotion_reason = 'passed the rule'")
    page = render()
    assert "2025.03.1 (awaiting approval)" in page
    assert _table(page, "model-history")[1][4] == "awaiting approval"
