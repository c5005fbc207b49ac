"""Loading a multi-hospital file into the local federation: the split by site, its errors, the writes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from flareflow.local.sites import DataSource, SiteDataError, split_by_site, write_site_data
from flareflow.site_names import site_slug

HEADER = "rec,Clinic,seen_on,value\n"


def _source(tmp_path: Path, rows: list[str], header: str = HEADER) -> DataSource:
    path = tmp_path / "all.csv"
    path.write_text(header + "".join(f"{row}\n" for row in rows))
    return DataSource(path, "Clinic", "seen_on")


@pytest.mark.parametrize(("name", "slug"), [
    ("VA Long Beach", "va-long-beach"), ("Cleveland", "cleveland"), ("St. Mary's Clinic", "st-marys-clinic"),
    ("  Hôpital  Saint-Éloi ", "hopital-saint-eloi"), ("North_West 2", "north-west-2"),
])
def test_a_hospital_name_becomes_an_nvflare_safe_site_name(name: str, slug: str) -> None:
    assert site_slug(name) == slug


@pytest.mark.parametrize("name", ["", " -- ", "病院", "x" * 64])
def test_a_name_without_a_usable_site_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="no usable site name"):
        site_slug(name)


def test_rows_go_to_the_configured_site_their_hospital_names(tmp_path: Path) -> None:
    source = _source(tmp_path, ["1,North Clinic,2026-01-02,3.5", "2,South Clinic,2026-01-03,", "3,North Clinic,,7"])
    sites = split_by_site(source, ["north-clinic", "south-clinic"])
    assert sites["north-clinic"]["rec"].tolist() == ["1", "3"]
    assert sites["south-clinic"]["rec"].tolist() == ["2"]
    assert sites["south-clinic"]["value"].tolist() == [""]  # an empty cell stays empty, never "nan"


def test_every_mismatch_between_file_and_config_is_named_at_once(tmp_path: Path) -> None:
    source = _source(tmp_path, ["1,North Clinic,,1", "2,East Ward,,1", "3,,,1", "4,east ward,,1"])
    with pytest.raises(SiteDataError) as raised:
        split_by_site(source, ["north-clinic", "west-clinic"])
    message = str(raised.value)
    assert str(source.file) in message and "'Clinic'" in message
    assert "1 rows have no hospital in column 'Clinic'" in message
    assert "hospitals ['East Ward', 'east ward'] all become site 'east-ward'" in message
    assert "rows for sites the config lacks: 'East Ward' -> east-ward" in message
    assert "configured sites without rows: ['west-clinic']" in message


def test_a_missing_site_or_date_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "all.csv"
    path.write_text("rec,value\n1,2\n")
    with pytest.raises(SiteDataError, match=r"no column \['Clinic', 'seen_on'\]"):
        split_by_site(DataSource(path, "Clinic", "seen_on"), ["a"])
    with pytest.raises(SiteDataError, match="data file not found"):
        split_by_site(DataSource(tmp_path / "absent.csv", "Clinic"), ["a"])


def test_each_site_gets_its_rows_unchanged_in_its_data_folder_only(tmp_path: Path) -> None:
    source = _source(tmp_path, ["1,North Clinic,2026-01-02,TRUE", "2,South Clinic,2026-01-03,0.50",
                                "3,North Clinic,2026-02-01,"], header="rec,Clinic,seen_on,value\n")
    workspaces = {"north-clinic": tmp_path / "ws" / "north", "south-clinic": tmp_path / "ws" / "south"}
    written = write_site_data(source, workspaces, "records.csv")
    assert written == {site: workspaces[site] / "local" / "flareflow" / "records.csv" for site in workspaces}
    assert written["north-clinic"].read_text() == (
        "rec,Clinic,seen_on,value\n1,North Clinic,2026-01-02,TRUE\n3,North Clinic,2026-02-01,\n")
    assert written["south-clinic"].read_text() == "rec,Clinic,seen_on,value\n2,South Clinic,2026-01-03,0.50\n"
    assert sorted(p.relative_to(tmp_path / "ws").as_posix() for p in (tmp_path / "ws").rglob("*") if p.is_file()) \
        == ["north/local/flareflow/records.csv", "south/local/flareflow/records.csv"]


def test_loading_the_same_file_again_leaves_the_site_files_alone(tmp_path: Path) -> None:
    source = _source(tmp_path, ["1,North Clinic,,1", "2,South Clinic,,2"])
    workspaces = {"north-clinic": tmp_path / "n", "south-clinic": tmp_path / "s"}
    first = write_site_data(source, workspaces, "d.csv")
    stamps = {site: path.stat().st_mtime_ns for site, path in first.items()}
    assert write_site_data(source, workspaces, "d.csv") == first
    assert {site: path.stat().st_mtime_ns for site, path in first.items()} == stamps


def test_another_delimiter_is_read_and_written(tmp_path: Path) -> None:
    path = tmp_path / "all.csv"
    path.write_text("rec;Clinic;value\n1;North Clinic;1,5\n2;South Clinic;2\n")
    workspaces = {"north-clinic": tmp_path / "n", "south-clinic": tmp_path / "s"}
    written = write_site_data(DataSource(path, "Clinic"), workspaces, "d.csv", ";")
    assert written["north-clinic"].read_text() == "rec;Clinic;value\n1;North Clinic;1,5\n"


def test_a_dataset_folder_describes_its_source(tmp_path: Path) -> None:
    (tmp_path / "source.yaml").write_text("file: all.csv\nsite_column: Clinic\ndate_column: seen_on\n")
    assert DataSource.from_folder(tmp_path) == DataSource((tmp_path / "all.csv").resolve(), "Clinic", "seen_on")
    source = DataSource.from_folder(tmp_path)
    assert DataSource.from_state(source.to_state()) == source
    (tmp_path / "source.yaml").write_text("file: all.csv\nsite: Clinic\n")
    with pytest.raises(SiteDataError, match=r"missing \['site_column'\], unknown \['site'\]"):
        DataSource.from_folder(tmp_path)


def test_the_split_keeps_every_record_once(tmp_path: Path) -> None:
    rows = [f"{i},{['North Clinic', 'South Clinic', 'West Clinic'][i % 3]},,{i}" for i in range(60)]
    sites = split_by_site(_source(tmp_path, rows), ["north-clinic", "south-clinic", "west-clinic"])
    together = pd.concat(sites.values())
    assert sorted(together["rec"].astype(int)) == list(range(60))
    assert {site: len(frame) for site, frame in sites.items()} == {
        "north-clinic": 20, "south-clinic": 20, "west-clinic": 20}
