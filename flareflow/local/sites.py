"""The demo federation's data: split the UCI file by hospital into each site's own workspace."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from fl_tasks.data import SITE_DATA_DIR

#: the hospital named in the ``dataset`` column -> its NVFlare site name
HOSPITAL_SITES: dict[str, str] = {
    "Cleveland": "cleveland",
    "Hungary": "hungary",
    "Switzerland": "switzerland",
    "VA Long Beach": "va-long-beach",
}
#: simulated admission dates are spread over these 24 months (the UCI data has no dates)
ADMISSIONS_FROM = date(2024, 11, 1)
ADMISSIONS_UNTIL = date(2026, 11, 1)  # exclusive


def admission_date(site: str, record_id: int) -> date:
    """Return the simulated admission date of one record: a hash of site and id, deterministic."""
    span = (ADMISSIONS_UNTIL - ADMISSIONS_FROM).days
    digest = hashlib.sha256(f"{site}:{record_id}".encode()).digest()
    return ADMISSIONS_FROM + timedelta(days=int.from_bytes(digest[:8], "big") % span)


def split_by_site(source_csv: Path) -> dict[str, pd.DataFrame]:
    """Return each site's records, with their simulated admission dates.

    :param source_csv: the combined UCI Heart Disease file
    """
    frame = pd.read_csv(source_csv)
    unknown = sorted(set(frame["dataset"]) - set(HOSPITAL_SITES))
    if unknown:
        raise ValueError(f"{source_csv}: hospitals without a site name: {unknown}")
    sites = {}
    for hospital, site in HOSPITAL_SITES.items():
        rows = frame.loc[frame["dataset"] == hospital].copy()
        rows["admission_date"] = [admission_date(site, int(i)).isoformat() for i in rows["id"]]
        sites[site] = rows.reset_index(drop=True)
    return sites


def write_site_data(source_csv: Path, site_workspaces: dict[str, Path], file_name: str) -> dict[str, Path]:
    """Write each site's records into that site's own workspace; return the files written.

    :param source_csv: the combined UCI Heart Disease file
    :param site_workspaces: site name -> its NVFlare workspace root
    :param file_name: the data file name the jobs read (``data.file_name`` in the config)
    """
    written = {}
    for site, rows in split_by_site(source_csv).items():
        if site not in site_workspaces:
            continue
        target = site_workspaces[site] / SITE_DATA_DIR / file_name
        target.parent.mkdir(parents=True, exist_ok=True)
        rows.to_csv(target, index=False)
        written[site] = target
    return written
