"""The scale benchmark's synthetic hospital files: the demo records resampled, jittered and redated.

No federation: only the resampler (``benchmarks/_resample.py``) and the benchmark's site files.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from benchmarks._resample import resample
from benchmarks.scale import MONTH, site_names, site_records, write_configs
from fl_tasks.contract import Contract
from flareflow.config import load_pipeline_config
from flareflow.local.stack import demo_source, project_dir

NUMERIC = ["age", "thalch", "oldpeak", "trestbps", "chol"]
WINDOW = (date(2026, 10, 1), date(2026, 11, 1))


@pytest.fixture(scope="module")
def template() -> pd.DataFrame:
    return pd.read_csv(demo_source().file, dtype=str, keep_default_na=False, na_filter=False)


def _draw(template: pd.DataFrame, rows: int = 5000, seed: int = 7, jitter: float = 0.05) -> pd.DataFrame:
    return resample(template, rows, seed=seed, window=WINDOW, date_column="admission_date", numeric=NUMERIC,
                    id_column="id", jitter=jitter)


def test_row_count_and_every_column_kept_in_order(template: pd.DataFrame) -> None:
    frame = _draw(template, rows=2345)
    assert len(frame) == 2345
    assert list(frame.columns) == list(template.columns)
    assert frame["id"].tolist() == [str(i) for i in range(1, 2346)]


def test_dates_spread_over_the_window_only(template: pd.DataFrame) -> None:
    dates = pd.to_datetime(_draw(template)["admission_date"], format="%Y-%m-%d")
    assert dates.min() >= pd.Timestamp(WINDOW[0]) and dates.max() < pd.Timestamp(WINDOW[1])
    assert dates.dt.day.nunique() == 31  # every day of October, with 5000 draws


def test_same_seed_same_records_other_seed_others(template: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(_draw(template, seed=3), _draw(template, seed=3))
    assert not _draw(template, seed=3).equals(_draw(template, seed=4))


def test_numbers_jittered_within_range_missing_stays_missing(template: pd.DataFrame) -> None:
    frame = _draw(template)
    drawn_rows = _draw(template, jitter=0.0)  # the same seed draws the same rows: here without noise
    assert frame.drop(columns=NUMERIC).equals(drawn_rows.drop(columns=NUMERIC))
    for column in NUMERIC:
        known = pd.to_numeric(template[column], errors="coerce")
        drawn = pd.to_numeric(frame[column], errors="coerce")
        original = pd.to_numeric(drawn_rows[column], errors="coerce")
        assert drawn.dropna().between(known.min(), known.max()).all()
        assert (drawn.isna() == original.isna()).all()
        # most values moved, yet the distribution keeps its centre
        present = original.notna() & (original != 0)
        assert (drawn[present] != original[present]).mean() > 0.2
        assert abs(drawn.mean() - known.mean()) < 0.1 * known.std()
    # empty cells stay empty and a 0 (missing in zero_means_missing columns) stays 0, at about their rates
    for column in ("chol", "trestbps"):
        assert ((frame[column] == "0") == (drawn_rows[column] == "0")).all()
        assert ((frame[column] == "") == (drawn_rows[column] == "")).all()
        assert (frame[column] == "0").any() or (frame[column] == "").any()
    assert frame["age"].str.fullmatch(r"\d+").all()  # integers stay integers


def test_site_file_fits_the_generated_config(tmp_path) -> None:  # type: ignore[no-untyped-def]
    configs = write_configs(project_dir() / "configs", tmp_path / "configs", site_names(16))
    config = load_pipeline_config(configs).job("stats")
    assert config.federation.sites == [f"site-{i:02d}" for i in range(1, 17)]
    data = config.data.model_dump(mode="json")
    frame = site_records(data, "site-16", 15, 300, seed=0)
    contract = Contract.from_config(data)
    assert set(contract.columns) <= set(frame.columns)
    assert (frame[demo_source().site_column] == "site-16").all()
    assert frame["admission_date"].between(MONTH[0].isoformat(), MONTH[1].isoformat(), inclusive="left").all()
