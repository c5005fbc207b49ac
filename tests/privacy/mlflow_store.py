"""What the stack's MLflow holds, and a real run that gives it something to hold.

:func:`train_and_register` runs the real training job (its NVFlare MLflow receiver logs the per-site
runs to the stack's MLflow server) and then the pipeline's registration step (``pipeline.register_model``:
parent run, params, metrics, the logged model with its input example, a registered version), as the
monthly DAG does. :func:`tables` reads every table of an MLflow backend database; :func:`roots` lists
the folders holding its artifacts and logs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import mlflow
import pandas as pd
import psycopg2
from mlflow import MlflowClient
from postgres_helpers import temporary_database
from sklearn.linear_model import LogisticRegression
from stats_jobs import UNTIL, StatsRun, warehouse_tables

import fl_tasks.stats.job as stats_job
import fl_tasks.train.job as train_job
from benchmarks._federation import Job, run_job
from flareflow import pipeline
from flareflow.local.stack import Stack
from flareflow.registry import RUN_TAG
from flareflow.warehouse import loaders
from flareflow.warehouse.schema import migrate

#: the Airflow run id the privacy scan's training and registration stand for
RUN_ID = "privacy_scan__2026-10"
#: the key and value columns of MLflow's key-value tables, and the column naming what they belong to
KEY_COLUMNS = ("key", "param_key", "tag_key", "metric_name")
VALUE_COLUMNS = ("value", "param_value", "tag_value", "metric_value")
OWNER_COLUMNS = ("run_uuid", "run_id", "model_id", "experiment_id", "name")

Table = tuple[list[str], list[tuple]]


@contextmanager
def tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow at ``uri`` meanwhile, as the pipeline's workers are (``MLFLOW_TRACKING_URI``)."""
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous


def train_and_register(stack: Stack, stats: StatsRun, work: Path, *, rounds: int = 3) -> dict[str, Any]:
    """Run the training job and register its model in the stack's MLflow; return the registered version.

    :param stack: the running test stack
    :param stats: the stats run whose result the training job and the registration read
    :param work: a folder for the job's export and result
    :param rounds: FedAvg rounds (fewer than the pipeline's: the content, not the model, matters here)
    """
    validated = pipeline.validate_config(stack.config_dir, {"rounds": rounds})
    stats_file = str(stats.download / "workspace" / stats_job.RESULT_FILE)
    job = Job(train_job, "train", {"config": validated["jobs"]["train"], "until": UNTIL, "stats_result": stats_file,
                                   "mlflow_run_tags": {RUN_TAG: RUN_ID}})
    training_file = run_job(stack, job, work, timeout_s=900)
    run = pipeline.run_info(run_id=RUN_ID, dag_id="federated_retraining", start=datetime(2026, 10, 1, tzinfo=UTC),
                            end=datetime.fromisoformat(UNTIL).replace(tzinfo=UTC), validated=validated,
                            sites=stack.sites())
    # the run and its calendar number go to a throwaway warehouse: the stack's belongs to the end-to-end runs
    with temporary_database(stack.database().base_url) as url, tracking_uri(stack.env()["MLFLOW_TRACKING_URI"]):
        conn = psycopg2.connect(url)
        try:
            migrate(conn)  # the statistics, as the DAG's step before (without the data check's reports)
            loaders.load_stats(conn, run, stats.result)
            return pipeline.register_model(conn, run, validated, stats_file, str(training_file))
        finally:
            conn.close()


def plant_record(database_url: str, artifacts: Path, record: Mapping[str, float]) -> None:
    """Log a patient record to the MLflow store at ``database_url`` the ways a leak could take: a param's
    text, one metric per column, and a logged model's input example.

    :param database_url: an MLflow backend database (PostgreSQL), created empty
    :param artifacts: the folder the store's artifacts go to
    :param record: the record's values by column
    """
    frame = pd.DataFrame([dict(record)])
    model = LogisticRegression().fit(pd.concat([frame, frame + 1.0]), [0, 1])
    with tracking_uri(database_url):
        experiment = MlflowClient().create_experiment("planted", artifact_location=artifacts.as_uri())
        with mlflow.start_run(experiment_id=experiment):
            mlflow.log_param("example", ", ".join(map(str, record.values())))
            mlflow.log_metrics(dict(record))
            mlflow.sklearn.log_model(model, name="model", input_example=frame)


def tables(database_url: str) -> dict[str, Table]:
    """Return every table of an MLflow backend database: column names and rows, bytes decoded."""
    conn = psycopg2.connect(database_url)
    try:
        found = warehouse_tables(conn)
    finally:
        conn.close()
    return {name: (columns, [tuple(_plain(v) for v in row) for row in rows]) for name, (columns, rows) in found.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, memoryview | bytes):
        return bytes(value).decode("utf-8", errors="replace")
    return value


def roots(stack: Stack, found: Mapping[str, Table]) -> list[Path]:
    """Return the folders holding what the stack's MLflow holds: its server's artifact store, every local
    artifact location its experiments, runs and logged models name, and the services' logs.

    An experiment NVFlare's MLflow receiver created first has its artifacts in the NVFlare server's job
    folder (``file://``), not in the server's artifact store.

    :param stack: the running test stack
    :param found: the tables of its MLflow database (see :func:`tables`)
    """
    folders = {stack.home / "mlflow", stack.run_dir}
    for table, column in (("experiments", "artifact_location"), ("runs", "artifact_uri"),
                          ("logged_models", "artifact_location")):
        for row in rows_of(found, table) if table in found else []:
            uri = urlparse(str(row.get(column) or ""))
            if uri.scheme == "file":
                folders.add(Path(unquote(uri.path)))
    existing = sorted(f.resolve() for f in folders if f.exists())
    return [f for f in existing if not any(other in f.parents for other in existing)]


def named_values(table: Table, names: Sequence[str]) -> Iterator[tuple[str, tuple[float, ...]]]:
    """Yield ``(owner, values)`` wherever one run or model holds a key for each of ``names`` with a number.

    A record could leave as one metric or param per column (``age``, ``chol`` …) rather than as numbers
    side by side; this puts such values back together in the order of ``names``.

    :param table: an MLflow key-value table (params, metrics, tags …)
    :param names: the record columns, in the order to compare with
    """
    columns, rows = table
    key = next((columns.index(c) for c in KEY_COLUMNS if c in columns), None)
    value = next((columns.index(c) for c in VALUE_COLUMNS if c in columns), None)
    owner = next((columns.index(c) for c in OWNER_COLUMNS if c in columns), None)
    if key is None or value is None or owner is None:
        return
    held: dict[str, dict[str, float]] = {}
    for row in rows:
        try:
            number = round(float(row[value]), 1)
        except (TypeError, ValueError):
            continue
        held.setdefault(str(row[owner]), {})[str(row[key]).rsplit(".", 1)[-1]] = number
    for who, values in held.items():
        if all(name in values for name in names):
            yield who, tuple(values[name] for name in names)


def rows_text(table: Table) -> str:
    """Return a table's rows as text, one line per row, values separated by commas."""
    return "\n".join(", ".join(map(str, row)) for row in table[1])


def rows_of(found: Mapping[str, Table], table: str, **where: Any) -> list[dict[str, Any]]:
    """Return the rows of one table (as column -> value) whose columns hold the given values."""
    columns, rows = found[table]
    named = [dict(zip(columns, row, strict=True)) for row in rows]
    return [row for row in named if all(row[column] == value for column, value in where.items())]
