"""Load a multi-hospital CSV into the local federation: each hospital's rows into its own site's workspace.

The file's site column names each record's hospital; its names are turned into site names
(``flareflow.site_names.site_slug``) and matched against the configured sites. The rows are written
as they are (text unchanged, every column kept) into ``<site workspace>/local/flareflow/<file_name>``,
the folder each hospital's jobs read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from fl_tasks.data import SITE_DATA_DIR
from flareflow.site_names import site_slug

#: a dataset folder's description of its multi-hospital file (``flareflow up --data FOLDER``)
SOURCE_FILE = "source.yaml"


class SiteDataError(ValueError):
    """The file does not fit the configured sites; the message lists every problem."""


@dataclass(frozen=True)
class DataSource:
    """A multi-hospital CSV and the columns naming each record's hospital and date.

    :param file: the CSV holding every hospital's records
    :param site_column: the column naming each record's hospital
    :param date_column: the column dating each record (checked against the config's ``data.date_column``)
    """

    file: Path
    site_column: str
    date_column: str | None = None

    @classmethod
    def from_folder(cls, folder: Path) -> DataSource:
        """Return the source a dataset folder describes in its ``source.yaml``.

        :param folder: a dataset folder (``file``, ``site_column`` and optional ``date_column`` in its source.yaml)
        """
        path = folder / SOURCE_FILE
        if not path.is_file():
            raise SiteDataError(f"{folder}: no {SOURCE_FILE}; give a CSV file and --site-column instead")
        spec = yaml.safe_load(path.read_text()) or {}
        unknown = sorted(set(spec) - {"file", "site_column", "date_column"})
        missing = sorted({"file", "site_column"} - set(spec))
        if unknown or missing:
            raise SiteDataError(f"{path}: needs file and site_column (date_column optional); "
                                f"missing {missing}, unknown {unknown}")
        return cls((folder / spec["file"]).resolve(), spec["site_column"], spec.get("date_column"))

    def to_state(self) -> dict[str, Any]:
        """Return the source as the stack's state file keeps it."""
        return {"file": str(self.file), "site_column": self.site_column, "date_column": self.date_column}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> DataSource:
        """Return the source the stack's state file remembers.

        :param state: what :meth:`to_state` returned
        """
        return cls(Path(state["file"]), state["site_column"], state.get("date_column"))


def read_source(source: DataSource, delimiter: str = ",") -> pd.DataFrame:
    """Return the source's records as text, exactly as the file writes them (empty cells stay empty).

    :param source: the multi-hospital file
    :param delimiter: its field separator (the config's ``data.delimiter``)
    """
    if not source.file.is_file():
        raise SiteDataError(f"data file not found: {source.file}")
    frame = pd.read_csv(source.file, sep=delimiter, dtype=str, keep_default_na=False, na_filter=False)
    missing = [c for c in (source.site_column, source.date_column) if c and c not in frame.columns]
    if missing:
        raise SiteDataError(f"{source.file}: no column {missing} (columns: {list(frame.columns)})")
    return frame


def split_by_site(source: DataSource, sites: Sequence[str], delimiter: str = ",") -> dict[str, pd.DataFrame]:
    """Return each configured site's records; fail naming every mismatch between the file and the sites.

    A configured site without rows, rows of a hospital whose site is not configured, rows without a
    hospital and two hospital names giving one site name are all errors, reported together.

    :param source: the multi-hospital file
    :param sites: the configured sites (``federation.sites``)
    :param delimiter: the file's field separator
    """
    frame = read_source(source, delimiter)
    names = frame[source.site_column].str.strip()
    problems = []
    blank = int((names == "").sum())
    if blank:
        problems.append(f"{blank} rows have no hospital in column {source.site_column!r}")
    slugs: dict[str, str] = {}
    for name in sorted(set(names) - {""}):
        try:
            slugs[name] = site_slug(name)
        except ValueError as err:
            problems.append(str(err))
    by_site: dict[str, list[str]] = {}
    for name, slug in slugs.items():
        by_site.setdefault(slug, []).append(name)
    problems += [f"hospitals {names_} all become site {slug!r}" for slug, names_ in by_site.items() if len(names_) > 1]
    unconfigured = {slug: names_ for slug, names_ in by_site.items() if slug not in sites}
    if unconfigured:
        listed = ", ".join(f"{names_[0]!r} -> {slug}" for slug, names_ in sorted(unconfigured.items()))
        problems.append(f"rows for sites the config lacks: {listed}")
    empty = [site for site in sites if site not in by_site]
    if empty:
        problems.append(f"configured sites without rows: {empty}")
    if problems:
        raise SiteDataError(f"{source.file} (site column {source.site_column!r}) does not fit the configured "
                            f"sites {list(sites)}:\n  " + "\n  ".join(problems))
    site_of_row = names.map(slugs)
    return {site: frame.loc[site_of_row == site].reset_index(drop=True) for site in sites}


def site_data_path(workspace: Path, file_name: str) -> Path:
    """Return where a site's jobs read its data file: its data folder inside its workspace.

    :param workspace: the site's NVFlare workspace root (or provisioned kit)
    :param file_name: the config's ``data.file_name``
    """
    return workspace / SITE_DATA_DIR / file_name


def write_site_data(
    source: DataSource, site_workspaces: Mapping[str, Path], file_name: str, delimiter: str = ","
) -> dict[str, Path]:
    """Write each site's records into that site's data folder only; return the files.

    A file already holding exactly those records is left untouched, so loading again is a no-op.

    :param source: the multi-hospital file
    :param site_workspaces: each configured site -> its NVFlare workspace root
    :param file_name: the config's ``data.file_name``
    :param delimiter: the field separator of the source and of each site's file (``data.delimiter``)
    """
    written = {}
    for site, rows in split_by_site(source, list(site_workspaces), delimiter).items():
        target = site_data_path(site_workspaces[site], file_name)
        text = rows.to_csv(sep=delimiter, index=False, lineterminator="\n")
        if not target.is_file() or target.read_text() != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        written[site] = target
    return written
