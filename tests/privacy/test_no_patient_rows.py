"""No patient row leaves a hospital: everything the research centre holds is searched for one.

After a real stats job, the real training job and the pipeline's model registration (and whatever the
session ran before: the end-to-end pipeline's jobs, when it ran), this reads every text file the NVFlare
server holds (its workspace with job folders and logs, its job and snapshot stores, with their zip
archives opened) and every file the pipeline downloaded or exported, every row of the warehouse tables,
and everything the stack's MLflow holds: every table of its backend database (runs, params, metrics,
tags, inputs, logged models, registered versions), its artifact store (the logged model, with its input
example: the global mean patient, an aggregate) and the services' logs. None may hold:

- a record's ``(age, trestbps, chol, thalch, oldpeak)`` as numbers side by side (every complete record
  of every site's data file is looked for);
- a column of records' dates: :data:`DATE_COLUMN_MIN` or more distinct dates of the sites' records in one
  file or table, month boundaries aside (a run's window names its first and last day);
- a table header naming ``id`` with other record columns, or an object with a numeric ``id`` and a
  record's fields.

Column names are not patient data: the data contract names its columns (the date column included) in the
configs every job carries, and the data check reports per column.

In MLflow's key-value tables, a run or model holding one number per record column (``age``, ``chol`` …)
counts as side by side too. Source code shipped with the jobs (``*.py``) names the columns it reads and is
not searched; neither are certificates and keys, binary files other than numpy arrays (read as their
numbers: a skops-serialized model keeps its arrays so), or files over :data:`MAX_BYTES`. The hospitals' own workspaces
(where the records belong) are not the server's and are not searched.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import mlflow_store
import numpy as np
import pandas as pd
import psycopg2
import pytest
from postgres_helpers import temporary_database
from stats_jobs import StatsRun, completed_runs, site_data_file, warehouse_rows, warehouse_tables

from flareflow.local.stack import Stack, project_dir
from flareflow.registry import RUN_TAG

MAX_BYTES = 5_000_000
SKIPPED_SUFFIXES = {".py", ".pyc", ".crt", ".pem", ".key", ".so", ".whl", ".db", ".sqlite"}
TUPLE_COLUMNS = ("age", "trestbps", "chol", "thalch", "oldpeak")
#: every column of the demo's site files: the UCI file's, and the simulated admission date
COLUMNS = (*pd.read_csv(project_dir() / "data" / "demo" / "heart_disease_uci.csv", nrows=0).columns,
           "admission_date")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
SEPARATOR = re.compile(r"[\s,;:|\[\](){}\"']*")
RECORD_COLUMNS = set(COLUMNS) - {"id"}
ID_OBJECT = re.compile(r'"id"\s*:\s*\d+')
DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
DATE_COLUMN_MIN = 5


@dataclass(frozen=True)
class PatientRecords:
    """What a patient row would show: every complete record's values, and the records' dates."""

    values: set[tuple[float, ...]]
    dates: frozenset[str]


# -- the scanner -------------------------------------------------------------------------------------
def text_files(roots: Iterable[Path]) -> Iterator[tuple[str, str]]:
    """Yield ``(name, text)`` of every text file under ``roots``, zip archive members included."""
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            if path.suffix in SKIPPED_SUFFIXES or path.stat().st_size > MAX_BYTES:
                continue
            data = path.read_bytes()
            if data[:4] == b"PK\x03\x04":
                yield from _zip_members(str(path), data)
            elif (text := _text(data)) is not None:
                yield str(path), text


def _zip_members(name: str, data: bytes) -> Iterator[tuple[str, str]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for member in archive.infolist():
            if member.is_dir() or Path(member.filename).suffix in SKIPPED_SUFFIXES or member.file_size > MAX_BYTES:
                continue
            content = archive.read(member)
            if content[:4] == b"PK\x03\x04":
                yield from _zip_members(f"{name}!{member.filename}", content)
            elif (text := _text(content)) is not None:
                yield f"{name}!{member.filename}", text


def _text(data: bytes) -> str | None:
    """Return a file's content as text: text files as they are, numpy arrays (``.npy``, e.g. the arrays of
    a skops-serialized model) as their numbers, row by row; None for other binary files."""
    if data[:6] == b"\x93NUMPY":
        try:
            array = np.load(io.BytesIO(data), allow_pickle=False)
        except ValueError:  # an object array: not numbers
            return None
        if array.size == 0:
            return ""
        rows = np.atleast_2d(array)
        return "\n".join(" ".join(map(str, row)) for row in rows.reshape(-1, rows.shape[-1]).tolist())
    return data.decode("utf-8", errors="replace") if b"\0" not in data[:8192] else None


def number_runs(text: str) -> Iterator[list[float]]:
    """Yield each run of numbers standing side by side (only separators between them)."""
    run: list[float] = []
    end = 0
    for match in NUMBER.finditer(text):
        if run and not SEPARATOR.fullmatch(text, end, match.start()):
            yield run
            run = []
        run.append(round(float(match.group()), 1))
        end = match.end()
    if run:
        yield run


def _month_boundary(day: str) -> bool:
    parsed = date.fromisoformat(day)
    return parsed.day == 1 or (parsed + timedelta(days=1)).day == 1


def findings(name: str, text: str, records: PatientRecords) -> list[str]:
    """Return what in one file looks like a patient row."""
    found = []
    dates = {d for d in DATE.findall(text) if d in records.dates and not _month_boundary(d)}
    if len(dates) >= DATE_COLUMN_MIN:
        found.append(f"{name}: {len(dates)} records' dates, e.g. {sorted(dates)[:3]}")
    width = len(TUPLE_COLUMNS)
    for run in number_runs(text):
        for start in range(len(run) - width + 1):
            if tuple(run[start : start + width]) in records.values:
                found.append(f"{name}: a record's values {run[start : start + width]}")
    for line in text.splitlines()[:5000]:
        tokens = {t.strip("\"' ") for t in re.split(r"[,\t;|]", line)}
        if "id" in tokens and len(tokens & RECORD_COLUMNS) >= 2:
            found.append(f"{name}: a table header with a record id: {line[:120]}")
    for match in ID_OBJECT.finditer(text):
        nearby = text[match.end() : match.end() + 400]
        if sum(f'"{column}"' in nearby for column in RECORD_COLUMNS) >= 2:
            found.append(f"{name}: an object with a record id: {text[match.start() : match.start() + 120]}")
    return found


# -- what is searched --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def records(stack: Stack, production_run: StatsRun) -> PatientRecords:
    """Every complete record's (age, trestbps, chol, thalch, oldpeak), and every record's date, from every
    site's data file."""
    tuples: set[tuple[float, ...]] = set()
    dates: set[str] = set()
    date_column = production_run.config["data"]["date_column"]
    for site in production_run.sites:
        frame = pd.read_csv(site_data_file(stack, site, production_run.config))
        complete = frame[list(TUPLE_COLUMNS)].dropna()
        tuples |= {tuple(round(float(v), 1) for v in row) for row in complete.itertuples(index=False)}
        dates |= set(frame[date_column].dropna().astype(str))
    assert len(tuples) > 500 and len(dates) > 100
    return PatientRecords(tuples, frozenset(dates))


@pytest.fixture(scope="module")
def registered(stack: Stack, production_run: StatsRun) -> dict[str, Any]:
    """The training job's model, registered in the stack's MLflow as the pipeline does it."""
    return mlflow_store.train_and_register(stack, production_run, stack.home / "work" / "privacy-scan")


def server_roots(stack: Stack, runs: list[StatsRun]) -> list[Path]:
    """Return the folders the research centre holds: the server's workspace and stores, the downloads."""
    poc = stack.poc()
    server = poc.project_dir / "server"
    roots = [server, *(run.download for run in runs)]
    resources = json.loads((server / "local" / "resources.json").read_text())
    stores = {Path(v) for v in _strings(resources)  # the job and snapshot stores, in the POC workspace
              if v.startswith("/") and Path(v).is_dir() and stack.home.resolve() in Path(v).resolve().parents}
    roots += sorted(stores)
    roots += [p for p in (stack.home / "work", poc.admin_kit / "transfer") if p.is_dir()]
    sites = [poc.site_workspace(site).resolve() for site in poc.sites]
    assert not any(root.resolve() == site or site in root.resolve().parents for root in roots for site in sites)
    return roots


def _strings(tree: object) -> Iterator[str]:
    if isinstance(tree, dict):
        for value in tree.values():
            yield from _strings(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _strings(value)
    elif isinstance(tree, str):
        yield tree


# -- the tests ---------------------------------------------------------------------------------------
def test_the_scanner_finds_a_planted_row(tmp_path: Path, records: PatientRecords) -> None:
    record = sorted(records.values)[0]
    (tmp_path / "rows.csv").write_text("site,age,trestbps,chol,thalch,oldpeak\nx," + ",".join(map(str, record)))
    (tmp_path / "header.csv").write_text("id,age,sex\n")
    days = sorted(d for d in records.dates if not _month_boundary(d))[:DATE_COLUMN_MIN]
    (tmp_path / "dates.log").write_text("admission_date\n" + "\n".join(days))
    (tmp_path / "config.json").write_text('{"date_column": "admission_date", "since": "2025-06-01"}')  # names only
    (tmp_path / "rows.json").write_text(json.dumps([{"id": 7, "age": 63, "chol": 233}]))
    with zipfile.ZipFile(tmp_path / "workspace", "w") as archive:
        archive.writestr("log.txt", "values [" + ", ".join(map(str, record)) + "]")
        weights = io.BytesIO()
        np.save(weights, np.array([[0.5] * 6, [*record, 1.0]]))  # an array in a model file
        archive.writestr("model/weights.npy", weights.getvalue())
    found = [f for name, text in text_files([tmp_path]) for f in findings(name, text, records)]
    assert len(found) == 6, found


def test_nothing_the_server_holds_has_a_patient_row(
    stack: Stack, production_run: StatsRun, registered: dict[str, Any], records: PatientRecords
) -> None:
    runs = completed_runs(stack)
    assert production_run in runs
    files = found = trained = 0
    problems: list[str] = []
    for name, text in text_files(server_roots(stack, runs)):
        files += 1
        problems += findings(name, text, records)
        found += "feature_stats.json" in name
        trained += name.endswith("training_result.json")
    assert found >= len(runs), "the downloaded results were not searched"
    assert trained, "the training job's result was not searched"
    assert not problems, "\n".join(problems[:20])
    print(f"\nsearched {files} text files for {len(records.values)} records")


def test_no_warehouse_table_has_a_patient_row(
    stack: Stack, production_run: StatsRun, records: PatientRecords
) -> None:
    loaded = warehouse_rows(stack, production_run)  # the production result, loaded into a fresh warehouse
    assert loaded["feature_stats"]
    tables = {f"fresh.{name}": table for name, table in loaded["tables"].items()}
    conn = psycopg2.connect(stack.database().url("flareflow_warehouse"))  # the stack's, e2e runs included
    try:
        tables.update({f"stack.{name}": table for name, table in warehouse_tables(conn).items()})
    finally:
        conn.close()
    problems = []
    for name, (columns, rows) in tables.items():
        bad = {c for c in columns if c in COLUMNS}
        if bad:
            problems.append(f"{name}: columns {sorted(bad)}")
        text = "\n".join(", ".join(map(str, row)) for row in rows)
        problems += findings(name, text, records)
    assert not problems, "\n".join(problems[:20])


# -- MLflow ------------------------------------------------------------------------------------------
def mlflow_findings(
    tables: dict[str, mlflow_store.Table], roots: list[Path], records: PatientRecords
) -> tuple[list[str], list[str]]:
    """Return what in an MLflow store (its tables, and the files under ``roots``) looks like a patient row,
    and the names of everything searched."""
    problems: list[str] = []
    searched: list[str] = []
    for name, table in tables.items():
        searched.append(f"mlflow.{name}")
        problems += findings(f"mlflow.{name}", mlflow_store.rows_text(table), records)
        problems += [f"mlflow.{name}: {owner} holds a record's values {values}"
                     for owner, values in mlflow_store.named_values(table, TUPLE_COLUMNS) if values in records.values]
    for name, text in text_files(roots):
        searched.append(name)
        problems += findings(name, text, records)
    return problems, searched


def test_the_mlflow_scan_finds_a_planted_record(
    stack: Stack, records: PatientRecords, tmp_path: Path
) -> None:
    record = sorted(records.values)[0]
    with temporary_database(stack.database().base_url) as url:  # a throwaway MLflow store, not the stack's
        mlflow_store.plant_record(url, tmp_path / "artifacts", dict(zip(TUPLE_COLUMNS, record, strict=True)))
        problems, searched = mlflow_findings(mlflow_store.tables(url), [tmp_path], records)
    assert "mlflow.params" in searched and "mlflow.metrics" in searched
    where = {problem.split(":")[0].rsplit("/", 1)[-1] for problem in problems}
    # as a param's text, as one metric per column, as the logged model's input example
    assert {"mlflow.params", "mlflow.metrics", "input_example.json", "serving_input_example.json"} <= where, problems


def test_nothing_mlflow_holds_has_a_patient_row(
    stack: Stack, registered: dict[str, Any], records: PatientRecords
) -> None:
    tables = mlflow_store.tables(stack.database().url("flareflow_mlflow"))
    run = registered["mlflow_run_id"]  # the run the pipeline logged the model to: it must hold something
    metrics = {row["key"] for row in mlflow_store.rows_of(tables, "metrics", run_uuid=run)}
    assert {"validation_auc", "test_auc"} <= metrics, metrics
    assert mlflow_store.rows_of(tables, "params", run_uuid=run)
    assert mlflow_store.rows_of(tables, "model_versions", run_id=run, version=int(registered["mlflow_version"]))
    site_runs = mlflow_store.rows_of(tables, "tags", key=RUN_TAG, value=mlflow_store.RUN_ID)
    assert len(site_runs) > len(stack.sites()), site_runs  # the parent run and the per-site runs
    roots = mlflow_store.roots(stack, tables)
    examples = sorted(path for root in roots for path in root.rglob("input_example.json"))
    assert examples, f"the logged model's input example is in none of {roots}"

    problems, searched = mlflow_findings(tables, roots, records)
    assert {str(path) for path in examples} <= set(searched)
    assert any(name.endswith(".skops") or ".skops!" in name for name in searched), "the model was not searched"
    assert not problems, "\n".join(problems[:20])
    print(f"\nsearched {len(searched)} MLflow tables and files for {len(records.values)} records; artifacts in {roots}")


def test_the_input_example_is_the_global_mean_patient(
    stack: Stack, production_run: StatsRun, registered: dict[str, Any], records: PatientRecords
) -> None:
    means = production_run.result["statistics"]["mean"]
    expected = [means[feature]["global"] for feature in production_run.features]
    roots = mlflow_store.roots(stack, mlflow_store.tables(stack.database().url("flareflow_mlflow")))
    examples = [json.loads(path.read_text()) for root in roots for path in root.rglob("input_example.json")]
    ours = [e for e in examples if e["columns"] == production_run.features
            and np.allclose(e["data"], [expected], rtol=1e-9, atol=0)]
    assert ours, examples
    assert tuple(round(float(v), 1) for v in expected[: len(TUPLE_COLUMNS)]) not in records.values
