"""The demo federation's data: provenance, the split by hospital, simulated admission dates."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

from flareflow.local.sites import ADMISSIONS_FROM, ADMISSIONS_UNTIL, admission_date, split_by_site, write_site_data
from flareflow.local.stack import project_dir

SOURCE = project_dir() / "data" / "heart_disease_uci.csv"


def test_the_shipped_file_is_the_documented_one() -> None:
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()
    assert digest == "574f2fa2b43012fa25fca4fcdb36bd7c6bccdd0af4242f6c0e4c8633c5a072ae"
    assert digest in (project_dir() / "data" / "README.md").read_text()


def test_each_hospital_becomes_one_site_with_all_its_patients() -> None:
    sites = split_by_site(SOURCE)
    assert {site: len(rows) for site, rows in sites.items()} == {
        "cleveland": 304, "hungary": 293, "switzerland": 123, "va-long-beach": 200,
    }
    assert sites["hungary"]["dataset"].unique().tolist() == ["Hungary"]


def test_admission_dates_are_deterministic_and_span_24_months() -> None:
    dates = [admission_date("cleveland", i) for i in range(1, 2000)]
    assert dates == [admission_date("cleveland", i) for i in range(1, 2000)]
    assert min(dates) >= ADMISSIONS_FROM and max(dates) < ADMISSIONS_UNTIL
    assert len({(d.year, d.month) for d in dates}) == 24
    assert admission_date("cleveland", 1) != admission_date("hungary", 1) or admission_date(
        "cleveland", 2) != admission_date("hungary", 2)


def test_each_site_gets_only_its_own_rows_in_its_own_workspace(tmp_path: Path) -> None:
    workspaces = {site: tmp_path / site for site in ("cleveland", "switzerland")}
    written = write_site_data(SOURCE, workspaces, "heart.csv")
    assert set(written) == {"cleveland", "switzerland"}
    for site, path in written.items():
        assert path == workspaces[site] / "local" / "flareflow" / "heart.csv"
    text = written["switzerland"].read_text()
    assert "Switzerland" in text and "Cleveland" not in text
    assert date.fromisoformat(text.splitlines()[1].rsplit(",", 1)[1]) >= ADMISSIONS_FROM
