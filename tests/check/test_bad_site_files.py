"""Every way a hospital's file can break the contract: its report counts it, the rules name column and reason.

Each case writes one broken file and asserts exactly the problems it must give: which column, what kind
of problem, and words of the reason (none of it depends on the hospital).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from site_files import DATA, UNTIL, data_section, good_records, write

from fl_tasks.check import rules
from fl_tasks.check.job import result_problems
from fl_tasks.check.report import check_site_file
from fl_tasks.contract import Contract

CONTRACT = Contract.from_config(DATA)


def check(path: Path, contract: Contract = CONTRACT) -> dict:
    report = check_site_file(path, contract, UNTIL)
    json.dumps(report)  # JSON-safe, as NVFlare and the warehouse take it
    return report


def problems_of(path: Path, contract: Contract = CONTRACT) -> list[rules.Problem]:
    return rules.site_problems("some-hospital", check(path, contract))


def _no_file(tmp: Path) -> Path:
    return tmp / "records.csv"


def _empty(tmp: Path) -> Path:
    (tmp / "records.csv").write_text("")
    return tmp / "records.csv"


def _header_only(tmp: Path) -> Path:
    return write(good_records().iloc[:0], tmp / "records.csv")


def _column_missing(tmp: Path) -> Path:
    return write(good_records().drop(columns=["pressure"]), tmp / "records.csv")


def _text_in_numeric(tmp: Path) -> Path:
    records = good_records()
    records.loc[[3, 17], "weight"] = ["heavy", "72,5"]
    return write(records, tmp / "records.csv")


def _bad_date(tmp: Path) -> Path:
    records = good_records()
    records.loc[5, "visit_date"] = "14/03/2026"
    return write(records, tmp / "records.csv")


def _after_window(tmp: Path) -> Path:
    records = good_records()
    records["visit_date"] = UNTIL.isoformat()  # the window ends before UNTIL
    return write(records, tmp / "records.csv")


def _one_label_class(tmp: Path) -> Path:
    records = good_records()
    records["outcome"] = "0"
    return write(records, tmp / "records.csv")


def _semicolons(tmp: Path) -> Path:
    return write(good_records(), tmp / "records.csv", delimiter=";")


def _duplicate_ids(tmp: Path) -> Path:
    records = good_records()
    records.loc[[7, 8], "record_id"] = records.loc[6, "record_id"]
    records.loc[9, "record_id"] = f" {records.loc[10, 'record_id']}.0"  # the same id, canonically
    return write(records, tmp / "records.csv")


# case -> (broken file, the column at fault, the problem's code, words of its reason)
CASES: dict[str, tuple[Callable[[Path], Path], str | None, str, str]] = {
    "no file": (_no_file, None, rules.NO_FILE, "no data file records.csv"),
    "empty file": (_empty, None, rules.EMPTY_FILE, "records.csv is empty"),
    "header only": (_header_only, None, rules.HEADER_ONLY, "a header but no records"),
    "required column missing": (_column_missing, "pressure", rules.MISSING_COLUMN, "missing from the file"),
    "text in a numeric column": (_text_in_numeric, "weight", rules.UNPARSEABLE, "2 unparseable values (not a number)"),
    "a date that does not parse": (_bad_date, "visit_date", rules.UNPARSEABLE,
                                   "1 unparseable value (not a date in the format ISO 8601"),
    "every record after the window": (_after_window, "visit_date", rules.NO_ROWS_IN_WINDOW,
                                      "no record in the run's window (dated before 2026-11-01)"),
    "only one label class": (_one_label_class, "outcome", rules.LABEL_CLASSES, "only label class 0"),
    "another delimiter": (_semicolons, None, rules.OTHER_DELIMITER, "separated by ';', but data.delimiter is ','"),
    "duplicate record ids": (_duplicate_ids, "record_id", rules.DUPLICATE_IDS, "3 duplicated record ids"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_file_gives_exactly_its_problem(case: str, tmp_path: Path) -> None:
    make, column, code, reason = CASES[case]
    found = problems_of(make(tmp_path))
    assert [(p.column, p.code) for p in found] == [(column, code)], found
    assert reason in found[0].reason
    where = f"some-hospital, column {column}: " if column else "some-hospital: "
    assert str(found[0]) == where + found[0].reason


def test_a_good_file_keeps_the_contract(tmp_path: Path) -> None:
    report = check(write(good_records(), tmp_path / "records.csv"))
    assert rules.site_problems("some-hospital", report) == []
    assert (report["file"], report["rows_in_file"], report["rows_in_window"]) == ("found", 40, 40)
    assert report["label_classes"] == [0, 1] and report["label_missing"] == 0 and report["duplicated_ids"] == 0
    assert list(report["columns"]) == CONTRACT.columns  # in contract order
    assert report["columns"]["age"]["missing_share"] == pytest.approx(4 / 40)
    assert report["columns"]["pressure"]["missing_share"] == pytest.approx(8 / 40)  # its zeros are missing
    assert all(c["unparseable"] == 0 and c["unknown"] == 0 for c in report["columns"].values())


def test_extra_columns_are_fine_and_never_leave_the_hospital(tmp_path: Path) -> None:
    records = good_records()
    records["notes"] = ['has "quotes", commas; and semicolons' for _ in range(len(records))]
    report = check(write(records, tmp_path / "records.csv"))
    assert rules.site_problems("some-hospital", report) == []
    text = json.dumps(report)
    assert "name" not in report["columns"] and "patient" not in text and "notes" not in text


def test_the_report_holds_counts_never_values(tmp_path: Path) -> None:
    records = good_records()
    records.loc[3, "weight"] = "secret-weight"
    records.loc[4, "region"] = "secret-region"
    text = json.dumps(check(write(records, tmp_path / "records.csv")))
    assert "secret" not in text
    for column in ("record_id", "visit_date", "age", "weight"):
        assert not any(str(value) in text for value in records[column].iloc[:5] if len(str(value)) > 3)


def test_unknown_categories_and_a_third_binary_value_are_counted(tmp_path: Path) -> None:
    records = good_records()
    records.loc[[1, 2], "region"] = ["west", "west"]
    records.loc[3, "stage"] = "4"
    records.loc[[4, 5], "smoker"] = ["maybe", "sometimes"]
    found = problems_of(write(records, tmp_path / "records.csv"))
    assert [(p.column, p.code) for p in found] == [
        ("smoker", rules.UNKNOWN_CATEGORY), ("region", rules.UNKNOWN_CATEGORY), ("stage", rules.UNKNOWN_CATEGORY)]
    assert [p.reason.split(" ")[0] for p in found] == ["2", "2", "1"]
    assert "beyond the two of a binary column" in found[0].reason


def test_a_missing_date_column_is_named_without_window_problems(tmp_path: Path) -> None:
    found = problems_of(write(good_records().drop(columns=["visit_date"]), tmp_path / "records.csv"))
    assert [(p.column, p.code) for p in found] == [("visit_date", rules.MISSING_COLUMN)]


def test_without_a_date_column_every_record_counts(tmp_path: Path) -> None:
    contract = Contract.from_config(data_section(date_column=None))
    records = good_records()
    records["visit_date"] = "not a date, and not read"
    report = check(write(records, tmp_path / "records.csv"), contract)
    assert report["rows_in_window"] == 40 and "visit_date" not in report["columns"]
    assert rules.site_problems("some-hospital", report) == []


def test_a_window_of_months_and_a_date_format(tmp_path: Path) -> None:
    contract = Contract.from_config(data_section(window_months=2, date_format="%d.%m.%Y"))
    records = good_records()
    records["visit_date"] = pd.to_datetime(records["visit_date"]).dt.strftime("%d.%m.%Y")
    report = check(write(records, tmp_path / "records.csv"), contract)
    assert report["rows_in_window"] == 8  # the weekly records from 2026-09-06 to 2026-10-25
    assert rules.site_problems("some-hospital", report) == []
    records.loc[0, "visit_date"] = "2026-03-14"  # ISO, but not the configured format
    found = problems_of(write(records, tmp_path / "records.csv"), contract)
    assert [(p.column, p.code) for p in found] == [("visit_date", rules.UNPARSEABLE)]
    assert "not a date in the format %d.%m.%Y" in found[0].reason


def test_an_unreadable_file_is_reported_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "records.csv"
    path.write_bytes("record_id,visit_date\n1,\xe9t\xe9\n".encode("latin-1"))
    found = problems_of(path)
    assert [(p.column, p.code) for p in found] == [(None, rules.UNREADABLE_FILE)]
    assert "not UTF-8 text" in found[0].reason


def test_one_message_lists_every_hospitals_problems(tmp_path: Path) -> None:
    reports = {
        "north-clinic": check(_no_file(tmp_path / "a")),
        "good-clinic": check(write(good_records(), tmp_path / "b" / "records.csv")),
        "south-clinic": check(_text_in_numeric(tmp_path / "c")),
    }
    reports["east-clinic"] = check(_duplicate_ids(tmp_path / "d"))
    lines = result_problems({"sites": reports})
    assert lines == [
        "north-clinic: no data file records.csv in the site's data folder",
        "south-clinic, column weight: 2 unparseable values (not a number)",
        "east-clinic, column record_id: 3 duplicated record ids (records repeating an earlier record's id)",
    ]
