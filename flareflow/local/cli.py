"""``flareflow``: run the monthly pipeline on the embedded local stack.

    flareflow init-config --data FILE --site-column COL --label COL [--date-column COL] [--id-column COL] --out DIR
                                 draft a commented config for a data file, a sample or a data dictionary
    flareflow up [--data FILE --site-column COL [--date-column COL]] [--airflow]
                                 start PostgreSQL, MLflow and the NVFlare POC (and Airflow's services),
                                 splitting the multi-hospital FILE into the configured sites' workspaces
                                 (default: the file of the last ``up``, else the demo dataset)
    flareflow up --executor celery [--workers N]
                                 the same, Airflow's services on the CeleryExecutor: N Celery workers
                                 on a Redis broker (a free database of 127.0.0.1:6379, else its own)
    flareflow run [--month M]    run the DAG once for a data month with ``airflow dags test``, showing each step
    flareflow backfill-stale     recompute the months computed with another config (the stack's scheduler runs them)
    flareflow demo               up with the demo dataset, run for the last complete month, print where to look
    flareflow status | down      what runs | stop exactly what ``up`` started
    flareflow airflow ARGS...    any Airflow command with the stack's settings
    flareflow env                print the stack's settings as shell ``export`` lines
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg2

from flareflow.config import ConfigError
from flareflow.init_config import InferenceError, add_arguments
from flareflow.init_config import run as run_init_config
from flareflow.local.sites import DataSource, SiteDataError
from flareflow.local.stack import DEMO_DATA, Stack, demo_source
from flareflow.paths import CONFIG_DIR_ENV, dashboard_file

DAG_ID = "federated_retraining"


def _airflow(stack: Stack, *args: str, check: bool = True) -> int:
    airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
    return subprocess.run([airflow, *args], env=stack.env(), cwd=stack.project, check=check).returncode


def run_month(stack: Stack, month: str | None, conf: str | None = None) -> int:
    """Run the DAG once, in this process tree, for one data month, showing each step; return its exit code.

    ``airflow dags test`` runs without a logical date (the run starts now: its duration in the UI is
    real), the month in its ``data_month`` param; its full output goes to a log file (see
    :mod:`flareflow.local.progress`).
    """
    from flareflow.local import progress

    params = {**json.loads(conf or "{}"), "data_month": month or progress.last_complete_month(stack.config_dir)}
    log_file = stack.home / "logs" / f"{DAG_ID}-{time.strftime('%Y%m%dT%H%M%S')}.log"
    airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
    print(f"running {DAG_ID} for {params['data_month']}")
    return progress.run_with_progress(
        [airflow, "dags", "test", DAG_ID, "--conf", json.dumps(params)], env=stack.env(), cwd=stack.project,
        log_file=log_file, connect=lambda: psycopg2.connect(stack.database().url("flareflow_airflow")), dag_id=DAG_ID)


def data_source(stack: Stack, data: str | None, site_column: str | None, date_column: str | None) -> DataSource:
    """Return the multi-hospital file ``up`` loads: the one given, else the stack's last, else the demo's.

    :param stack: the local stack
    :param data: a CSV file, or a dataset folder holding a ``source.yaml``
    :param site_column: the column naming each record's hospital (overrides the folder's)
    :param date_column: the column dating each record (overrides the folder's)
    """
    if data is None:
        if site_column or date_column:
            raise SiteDataError("--site-column and --date-column describe the file given with --data")
        remembered = stack.data_source()
        if remembered:
            return remembered
        logging.getLogger(__name__).info("no --data: loading the demo dataset %s", DEMO_DATA)
        return demo_source(stack.project)
    path = Path(data).resolve()
    if path.is_dir():
        folder = DataSource.from_folder(path)
        return DataSource(folder.file, site_column or folder.site_column, date_column or folder.date_column)
    if not site_column:
        raise SiteDataError(f"--data {data}: give the column naming each record's hospital (--site-column)")
    return DataSource(path, site_column, date_column)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flareflow", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser("init-config", help="draft a commented config for a data file")
    add_arguments(init)
    up = commands.add_parser("up", help="start the local stack")
    up.add_argument("--data", help="the multi-hospital CSV file (or a dataset folder with a source.yaml)")
    up.add_argument("--site-column", help="the column of --data naming each record's hospital")
    up.add_argument("--date-column", help="the column of --data dating each record (the config's data.date_column)")
    up.add_argument("--airflow", action="store_true", help="also start Airflow's UI, scheduler and triggerer")
    up.add_argument("--executor", choices=["local", "celery"], default=None,
                    help="who runs the tasks: the scheduler (local, the default) or Celery workers (celery, "
                         "starts Airflow's services); default: the last one")
    up.add_argument("--workers", type=int, default=1, help="Celery workers (with --executor celery)")
    run = commands.add_parser("run", help="run the DAG for one data month")
    run.add_argument("--month", help="the data month YYYY-MM (default: the last complete month)")
    run.add_argument("--conf", help="trigger params as JSON, e.g. '{\"rounds\": 5}'")
    demo = commands.add_parser("demo", help="up, run one month, print where to look")
    demo.add_argument("--month", help="the data month YYYY-MM (default: the last complete month)")
    stale = commands.add_parser("backfill-stale", help="recompute the months computed with another config")
    stale.add_argument("--dry-run", action="store_true", help="only list them")
    commands.add_parser("down", help="stop the local stack")
    commands.add_parser("status", help="say what runs")
    commands.add_parser("env", help="print the stack's settings as export lines")
    passthrough = commands.add_parser("airflow", help="run an Airflow command with the stack's settings")
    passthrough.add_argument("args", nargs=argparse.REMAINDER)
    options = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if options.command in ("run", "demo"):
        from flareflow.local.progress import quiet_terminal

        quiet_terminal()
    try:
        return _command(options)
    except (ConfigError, InferenceError, SiteDataError) as err:
        print(f"flareflow {options.command}: {err}", file=sys.stderr)
        return 2


def _command(options: argparse.Namespace) -> int:
    if options.command == "init-config":
        return run_init_config(options)
    stack = Stack.from_env()
    if options.command == "up":
        source = data_source(stack, options.data, options.site_column, options.date_column)
        stack.up(source, airflow_services=options.airflow, executor=options.executor, workers=options.workers)
        print(json.dumps(stack.status(), indent=2))
        return 0
    if options.command == "down":
        print("stopped:", ", ".join(stack.down()) or "nothing was running")
        return 0
    if options.command == "status":
        print(json.dumps(stack.status(), indent=2))
        return 0
    if options.command == "env":
        print(stack.write_env_file().read_text(), end="")
        return 0
    if options.command == "airflow":
        return _airflow(stack, *options.args, check=False)
    if options.command == "run":
        return run_month(stack, options.month, options.conf)
    if options.command == "backfill-stale":
        return _airflow(stack, "flareflow", "backfill-stale", *(["--dry-run"] if options.dry_run else []), check=False)
    started = time.monotonic()
    if not os.environ.get(CONFIG_DIR_ENV):  # the demo's configs, whatever the stack ran before
        stack = Stack(home=stack.home, project=stack.project, configs=stack.project / "configs")
    stack.up(demo_source(stack.project))
    code = run_month(stack, options.month)
    os.environ.update(stack.service_env())
    print(f"\nflareflow demo {'finished' if code == 0 else 'FAILED'} in {time.monotonic() - started:.0f}s")
    print(f"  dashboard:  {dashboard_file()}")
    print(f"  MLflow UI:  {stack.service_env()['MLFLOW_TRACKING_URI']}")
    print(f"  Airflow log: {stack.home / 'logs'} (the newest {DAG_ID}-*.log)")
    print("  stop with:  make down")
    return code


if __name__ == "__main__":
    sys.exit(main())
