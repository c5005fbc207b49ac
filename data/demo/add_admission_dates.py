"""Write the demo's file: the UCI Heart Disease records with a simulated admission date each.

The UCI data has no dates. So that monthly runs and backfills mean something, each record gets an
invented admission date: a hash of its hospital's site name and its record id, spread over the
24 months 2024-11-01 … 2026-10-31. The dates are deterministic and carry no clinical meaning.
The original file's text is kept as it is; only the column ``admission_date`` is appended.

    .venv/bin/python data/demo/add_admission_dates.py   # rewrites heart_disease_uci_dated.csv
"""

from __future__ import annotations

import csv
import hashlib
import io
import sys
from datetime import date, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORIGINAL = HERE / "heart_disease_uci.csv"
DATED = HERE / "heart_disease_uci_dated.csv"
#: the hospital as the ``dataset`` column names it -> its site name (the hash input, as before the move)
SITES = {"Cleveland": "cleveland", "Hungary": "hungary", "Switzerland": "switzerland",
         "VA Long Beach": "va-long-beach"}
ADMISSIONS_FROM = date(2024, 11, 1)
ADMISSIONS_UNTIL = date(2026, 11, 1)  # exclusive


def admission_date(site: str, record_id: int) -> date:
    """Return the simulated admission date of one record, from a hash of its site and id.

    :param site: the record's site name
    :param record_id: the record's ``id``
    """
    span = (ADMISSIONS_UNTIL - ADMISSIONS_FROM).days
    digest = hashlib.sha256(f"{site}:{record_id}".encode()).digest()
    return ADMISSIONS_FROM + timedelta(days=int.from_bytes(digest[:8], "big") % span)


def dated_text(original: str) -> str:
    """Return the original CSV text with an ``admission_date`` column appended to every row.

    :param original: the text of ``heart_disease_uci.csv``
    """
    rows = list(csv.reader(io.StringIO(original)))
    header, records = rows[0], rows[1:]
    hospital, record_id = header.index("dataset"), header.index("id")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*header, "admission_date"])
    for row in records:
        writer.writerow([*row, admission_date(SITES[row[hospital]], int(row[record_id])).isoformat()])
    return out.getvalue()


def main() -> int:
    """Write ``heart_disease_uci_dated.csv`` beside the original."""
    DATED.write_text(dated_text(ORIGINAL.read_text()))
    print(f"wrote {DATED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
