"""The shipped datasets: the demo's provenance and simulated dates, the second dataset's generator."""

from __future__ import annotations

import hashlib
import importlib.util
import io
from datetime import date
from pathlib import Path
from types import ModuleType

import pandas as pd

from flareflow.local.sites import split_by_site
from flareflow.local.stack import DEMO_DATA, demo_source, project_dir

DATA = project_dir() / "data"
DEMO = project_dir() / DEMO_DATA
SECOND = DATA / "synthetic-readmissions"
DEMO_SITES = ["cleveland", "hungary", "switzerland", "va-long-beach"]


def _script(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shipped_file_is_the_documented_one() -> None:
    digest = hashlib.sha256((DEMO / "heart_disease_uci.csv").read_bytes()).hexdigest()
    assert digest == "574f2fa2b43012fa25fca4fcdb36bd7c6bccdd0af4242f6c0e4c8633c5a072ae"
    assert digest in (DEMO / "README.md").read_text()


def test_the_dated_file_is_the_original_plus_the_simulated_dates() -> None:
    dates = _script(DEMO / "add_admission_dates.py")
    original = (DEMO / "heart_disease_uci.csv").read_text()
    dated = (DEMO / "heart_disease_uci_dated.csv").read_text()
    assert dated == dates.dated_text(original)  # the committed file is what the script writes
    for before, after in zip(original.splitlines(), dated.splitlines(), strict=True):
        assert after.rsplit(",", 1)[0] == before  # the original's text, one column appended
    stamps = pd.read_csv(DEMO / "heart_disease_uci_dated.csv")["admission_date"].map(date.fromisoformat)
    assert stamps.min() >= dates.ADMISSIONS_FROM and stamps.max() < dates.ADMISSIONS_UNTIL
    assert len({(d.year, d.month) for d in stamps}) == 24


def test_the_demo_source_splits_into_the_demo_sites_with_all_their_patients() -> None:
    source = demo_source()
    assert (source.site_column, source.date_column) == ("dataset", "admission_date")
    sites = split_by_site(source, DEMO_SITES)
    assert {site: len(rows) for site, rows in sites.items()} == {
        "cleveland": 304, "hungary": 293, "switzerland": 123, "va-long-beach": 200,
    }
    assert sites["hungary"]["dataset"].unique().tolist() == ["Hungary"]


def test_the_second_dataset_is_what_its_seeded_generator_writes() -> None:
    generator = _script(SECOND / "generate.py")
    committed = pd.read_csv(SECOND / "readmissions.csv", dtype=str, keep_default_na=False)
    fresh = pd.read_csv(io.StringIO(generator.records().to_csv(index=False)), dtype=str,
                        keep_default_na=False)
    pd.testing.assert_frame_equal(committed, fresh)
    counts = committed["hospital"].value_counts().to_dict()
    assert counts == {"Lakeside Medical Center": 480, "Hillcrest Hospital": 400, "St. Mary's Clinic": 320}
    for column in ("bmi", "systolic_bp", "hba1c"):
        assert (committed[column] == "").any(), column  # numeric features with missing values
    assert set(committed["smoker"]) == set(committed["diabetes"]) == set(committed["readmitted_30d"]) == {"0", "1"}
    assert set(committed["admission_type"]) == {"1", "2", "3"}
