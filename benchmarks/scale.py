"""Scale: how the real jobs grow with the rows per site and with the number of sites (issue 11, req. 3).

A grid of cells, rows per site (1k, 10k, 100k, 1M) x sites (4, 8, 16 POC clients). Each cell brings up
a fresh local stack (PostgreSQL, MLflow, an NVFlare POC federation with one client per site; no Airflow,
which the jobs do not use) from a config generated out of ``configs/`` with the sites replaced by
``site-01`` … (validated by ``flareflow.config``'s loader). Each site's data file is the demo file
resampled to that many rows (``benchmarks/_resample.py``: numeric contract columns jittered, admission
dates spread over the benchmark month, ids renumbered), written where the site's jobs read it
(``flareflow.local.sites.site_data_path``). Then flareflow's real jobs run one after the other as the
operator runs them (``benchmarks/_federation.py``): statistics -> training -> SHAP, for the month.

Per cell: each job's wall time from its NVFlare job meta (submitted to ended), the peak RSS of each
client's process tree (the client and the job processes it starts, sampled from ``/proc`` through
psutil every 0.5 s while the jobs run; the table shows the largest client), and the warehouse load time:
the statistics result read and loaded through ``flareflow.warehouse.loaders.load_stats`` into a fresh
database on the stack's PostgreSQL (migrated first, not timed). The 1-minute load average at the cell's
start and end is shown too: the machine may be shared.

    .venv/bin/python benchmarks/scale.py [--rows 1000,1000000] [--sites 4,16] [--timeout-s 3600]
        [--port 18300] [--results cells.jsonl]

prints one row per cell and, last, ``shap_growth_1k_to_1m=… stats_growth_1k_to_1m=…
train_growth_1k_to_1m=… sites16_over_sites4=…`` (growths: the job's time at 1M rows / at 1k rows, 4
sites; sites16_over_sites4: the three jobs' total at 1k rows, 16 sites / 4 sites; ``n/a`` when a cell
is missing or failed). Goals: SHAP at most 1.5x from 1k to 1M rows, statistics and training at most
linear in the rows (growth <= 1000), the 16-site cell completes on a 2-core 24 GB machine.
``--results`` keeps every cell as a JSON line, so a grid can be run in parts and reported together.

``--shap-max-rows none`` explains every row (as before ``shap.max_rows``); ``--rows ''`` only reports.

Measured 2026-12-01 on the shared 2-core, 24 GB machine (load 4-18; full table in README.md,
Benchmarks), SHAP sampling 2000 rows per site::

    shap_growth_1k_to_1m=1.06 stats_growth_1k_to_1m=1.35 train_growth_1k_to_1m=1.57 sites16_over_sites4=2.62

What breaks first, and why: SHAP, when it explains every row. The kernel explainer costs about 5 ms per
row per core here, so at 100k rows per site four sites need ~1000 s of the two cores, past the
controller's ``federation.task_timeout_s`` (600 s). Measured (``--rows 100000 --sites 4 --shap-max-rows
none``): statistics 23 s, training 57 s, then ``task 'explain': no result from site(s) site-01, site-02,
site-03, site-04 within 600s``. Statistics and training stay under 100 s (4 sites) even
at 1M rows (their fixed cost, NVFlare job deployment and each site's process start-up, dominates).
With the 2000-row sample nothing in the grid breaks; the next limits are the sites sharing two cores
(16 sites take 2.6x the time of 4) and memory: each client's process tree peaks at ~0.5 GB plus ~0.4 KB
per row it holds, ~15 GB for 16 sites x 1M rows.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import psycopg2
import yaml
from psycopg2 import sql

if __package__ in (None, ""):  # run as a script: make the ``benchmarks`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fl_tasks.shap.job as shap_job
import fl_tasks.stats.job as stats_job
import fl_tasks.train.job as train_job
from benchmarks._federation import (
    Job,
    JobRun,
    job_config,
    job_wall_s,
    private_stack,
    run_jobs_detailed,
    stdout_to_stderr,
)
from benchmarks._resample import resample
from fl_tasks.contract import Contract
from fl_tasks.stats.result import read_result
from flareflow.config import load_pipeline_config
from flareflow.config.files import DEFAULT_FILE
from flareflow.local.sites import DataSource, site_data_path
from flareflow.local.stack import Stack, demo_source, project_dir
from flareflow.warehouse import loaders
from flareflow.warehouse.schema import migrate

log = logging.getLogger("benchmarks.scale")

ROWS = (1_000, 10_000, 100_000, 1_000_000)
SITES = (4, 8, 16)
#: the benchmark month: every record is dated in it, and the jobs run for it (records before UNTIL)
MONTH = (date(2026, 10, 1), date(2026, 11, 1))
UNTIL = MONTH[1].isoformat()
JOBS = ("stats", "train", "shap")
#: the small file the stack is brought up with, before each site's file is replaced by its full one
BOOT_ROWS = 30
SAMPLE_S = 0.5


def site_names(count: int) -> list[str]:
    """Return the benchmark's site names: ``site-01`` … ``site-NN``."""
    return [f"site-{index:02d}" for index in range(1, count + 1)]


def write_configs(source: Path, target: Path, sites: Sequence[str]) -> Path:
    """Copy the config folder with ``federation.sites`` replaced; return it once the loader accepts it.

    :param source: the project's config folder
    :param target: the new folder (created)
    :param sites: the sites
    """
    target.mkdir(parents=True)
    for path in source.iterdir():
        if path.is_file() and path.suffix in (".yaml", ".yml"):
            shutil.copy(path, target / path.name)
    default = target / DEFAULT_FILE
    settings = yaml.safe_load(default.read_text())
    settings["federation"]["sites"] = list(sites)
    default.write_text(yaml.safe_dump(settings, sort_keys=False))
    loaded = load_pipeline_config(target)  # raises ConfigError naming every problem
    for job in JOBS:
        if loaded.job(job).federation.sites != list(sites):
            raise ValueError(f"{target}: the {job} job's sites are not {list(sites)}")
    return target


# -- the stack -----------------------------------------------------------------------------------------
class JobsStack(Stack):
    """The local stack without Airflow's metadata database: the benchmark submits the jobs itself."""

    def _migrate_airflow(self) -> None:
        return None


@contextmanager
def cell_stack(home_prefix: str, port: int | None, configs: Path, source: DataSource) -> Iterator[Stack]:
    """Bring up a throw-away stack in a new ``<home_prefix>*`` folder; stop and remove it afterwards.

    :param home_prefix: the path prefix of its state folder (e.g. ``/tmp/scale-home-``)
    :param port: the NVFlare server port (None: a free one, never 8002)
    :param configs: the config folder
    :param source: the multi-hospital file the sites start with
    """
    parent, prefix = os.path.split(home_prefix)
    with private_stack(prefix, source, configs, parent=parent or None, port=port, stack_class=JobsStack,
                       site_timeout_s=300) as stack:
        yield stack


# -- the data --------------------------------------------------------------------------------------------
def _template(data: Mapping[str, Any]) -> tuple[pd.DataFrame, DataSource, list[str]]:
    demo = demo_source()
    template = pd.read_csv(demo.file, sep=data["delimiter"], dtype=str, keep_default_na=False, na_filter=False)
    features = data["features"]
    numeric = [*features["numeric"], *features["zero_means_missing"]]
    return template, demo, numeric


def site_records(data: Mapping[str, Any], site: str, index: int, rows: int, seed: int) -> pd.DataFrame:
    """Return one site's synthetic records: the demo file resampled, for the benchmark month."""
    template, demo, numeric = _template(data)
    frame = resample(template, rows, seed=seed * 1000 + index, window=MONTH, date_column=data["date_column"],
                     numeric=numeric, id_column=data["id_column"])
    frame[demo.site_column] = site
    return frame


def boot_source(data: Mapping[str, Any], sites: Sequence[str], folder: Path, seed: int) -> DataSource:
    """Write a small multi-hospital file naming every site (the stack checks and splits it at ``up``)."""
    demo = demo_source()
    frame = pd.concat([site_records(data, site, i, BOOT_ROWS, seed) for i, site in enumerate(sites)])
    path = folder / "boot.csv"
    frame.to_csv(path, sep=data["delimiter"], index=False, lineterminator="\n")
    return DataSource(path, demo.site_column, data["date_column"])


def place_site_data(stack: Stack, data: Mapping[str, Any], rows: int, seed: int) -> None:
    """Replace each site's data file, in its own workspace, by ``rows`` synthetic records (one at a time)."""
    poc = stack.poc()
    for index, site in enumerate(poc.sites):
        frame = site_records(data, site, index, rows, seed)
        target = site_data_path(poc.site_workspace(site), data["file_name"])
        tmp = target.with_name(f".{target.name}.tmp")
        frame.to_csv(tmp, sep=data["delimiter"], index=False, lineterminator="\n")
        os.replace(tmp, target)
        del frame


# -- peak RSS of each client ---------------------------------------------------------------------------
class RssSampler:
    """Samples the RSS of each client's process tree (client, job processes) in a background thread.

    :param roots: each site -> the pid files of its client (read at every sample: clients restart)
    :param interval_s: the pause between samples
    """

    def __init__(self, roots: Mapping[str, Sequence[Path]], interval_s: float = SAMPLE_S) -> None:
        self.roots = roots
        self.interval_s = interval_s
        self.peaks: dict[str, int] = dict.fromkeys(roots, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)

    def sample(self) -> None:
        for site, files in self.roots.items():
            pids: set[int] = set()
            for pid_file in files:
                try:
                    root = psutil.Process(int(pid_file.read_text().strip()))
                    pids.update(p.pid for p in [root, *root.children(recursive=True)])
                except (FileNotFoundError, ValueError, psutil.Error):
                    continue
            total = 0
            for pid in pids:
                try:
                    total += psutil.Process(pid).memory_info().rss
                except psutil.Error:
                    continue
            self.peaks[site] = max(self.peaks[site], total)


def client_roots(stack: Stack) -> dict[str, list[Path]]:
    poc = stack.poc()
    return {site: [poc.site_workspace(site) / name for name in ("daemon_pid.fl", "pid.fl")] for site in poc.sites}


# -- the warehouse ---------------------------------------------------------------------------------------
@contextmanager
def fresh_warehouse(stack: Stack) -> Iterator[psycopg2.extensions.connection]:
    """Yield a connection to a new, migrated warehouse database on the stack's server; drop it after."""
    base = stack.database().base_url.rstrip("/")
    name = sql.Identifier(f"flareflow_scale_{uuid.uuid4().hex[:12]}")
    admin = psycopg2.connect(f"{base}/postgres")
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(name))
        conn = psycopg2.connect(f"{base}/{name.string}")
        try:
            migrate(conn)
            yield conn
        finally:
            conn.close()
            with admin.cursor() as cur:
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
    finally:
        admin.close()


def load_seconds(stack: Stack, stats_file: Path, config: Mapping[str, Any], sites: Sequence[str]) -> float:
    """Return how long reading the statistics result and loading it into a fresh warehouse takes."""
    run = loaders.RunInfo(run_id=f"scale-{uuid.uuid4().hex[:8]}", dag_id="benchmarks.scale",
                          data_interval_start=datetime.combine(MONTH[0], datetime.min.time()),
                          data_interval_end=datetime.combine(MONTH[1], datetime.min.time()),
                          config_fingerprint=load_pipeline_config(stack.config_dir).fingerprint, sites=list(sites))
    features = Contract.from_config(config["data"]).features.columns
    with fresh_warehouse(stack) as conn:
        started = time.perf_counter()
        written = loaders.load_stats(conn, run, read_result(stats_file, features))
        seconds = time.perf_counter() - started
    log.info("loaded %d warehouse rows in %.2f s", written, seconds)
    return seconds


# -- one cell --------------------------------------------------------------------------------------------
@dataclass
class Cell:
    """One cell's figures (seconds, MB); ``error`` says what stopped it, if anything did."""

    rows: int
    sites: int
    job_s: dict[str, float] = field(default_factory=dict)
    load_s: float | None = None
    client_rss_mb: dict[str, float] = field(default_factory=dict)
    up_s: float | None = None
    data_s: float | None = None
    load_avg: tuple[float, float] = (0.0, 0.0)
    records: dict[str, int] = field(default_factory=dict)
    error: str = ""

    @property
    def key(self) -> tuple[int, int]:
        return self.rows, self.sites

    @property
    def complete(self) -> bool:
        return not self.error and all(job in self.job_s for job in JOBS)

    @property
    def max_rss_mb(self) -> float | None:
        return max(self.client_rss_mb.values()) if self.client_rss_mb else None


def _run_job(stack: Stack, module: Any, name: str, args: Mapping[str, Any], work: Path, deadline: float) -> JobRun:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError(f"cell timeout before the {name} job")
    (run,) = run_jobs_detailed(stack, [Job(module, name, args)], work, timeout_s=remaining, poll_s=2)
    return run


def run_cell(
    rows: int, sites: int, *, timeout_s: float, port: int | None, home_prefix: str, seed: int = 0,
    overrides: Mapping[str, Any] | None = None,
) -> Cell:
    """Run statistics -> training -> SHAP on a fresh stack of ``sites`` clients with ``rows`` rows each.

    :param overrides: settings merged over every job's config (as a manual trigger's params are)
    """
    cell = Cell(rows, sites)
    load_start = os.getloadavg()[0]
    deadline = time.monotonic() + timeout_s
    with tempfile.TemporaryDirectory(prefix="flareflow-scale-") as tmp:
        work = Path(tmp)
        configs = write_configs(project_dir() / "configs", work / "configs", site_names(sites))
        data = load_pipeline_config(configs).job("stats").data.model_dump(mode="json")
        started = time.monotonic()
        try:
            with cell_stack(home_prefix, port, configs, boot_source(data, site_names(sites), work, seed)) as stack:
                cell.up_s = time.monotonic() - started
                started = time.monotonic()
                place_site_data(stack, data, rows, seed)
                cell.data_s = time.monotonic() - started
                with RssSampler(client_roots(stack)) as sampler:
                    try:
                        _jobs(stack, cell, work, deadline, overrides)
                    finally:
                        cell.client_rss_mb = {s: b / 2**20 for s, b in sampler.peaks.items()}
        except Exception as err:  # a cell that breaks is a finding: record it and go on with the grid
            log.exception("cell %d rows x %d sites failed", rows, sites)
            cell.error = cell.error or f"{type(err).__name__}: {err}"[:300]
    cell.load_avg = (load_start, os.getloadavg()[0])
    return cell


def _jobs(stack: Stack, cell: Cell, work: Path, deadline: float, overrides: Mapping[str, Any] | None) -> None:
    configs = {job: job_config(stack, job, overrides) for job in JOBS}
    stats = _run_job(stack, stats_job, "stats", {"config": configs["stats"], "until": UNTIL}, work, deadline)
    cell.job_s["stats"] = job_wall_s(stats.meta)
    cell.records = records_seen(stats.result_file)
    short = {site: n for site, n in cell.records.items() if n != cell.rows}
    if short:
        raise RuntimeError(f"the statistics job counted {short} records, not {cell.rows} per site")
    cell.load_s = load_seconds(stack, stats.result_file, configs["stats"], stack.sites())
    train = _run_job(stack, train_job, "train", {"config": configs["train"], "until": UNTIL,
                                                 "stats_result": str(stats.result_file)}, work, deadline)
    cell.job_s["train"] = job_wall_s(train.meta)
    shap = _run_job(stack, shap_job, "shap", {"config": configs["shap"], "until": UNTIL,
                                              "stats_result": str(stats.result_file),
                                              "training_result": str(train.result_file)}, work, deadline)
    cell.job_s["shap"] = job_wall_s(shap.meta)


def records_seen(stats_file: Path) -> dict[str, int]:
    """Return the records each site's statistics counted (the first feature's count: every row is dated
    in the month, so every row must be counted)."""
    raw = json.loads(stats_file.read_text())
    counts = next(iter(raw.values()))["count"]
    return {site: int(next(iter(value.values()))) for site, value in counts.items() if site != "Global"}


# -- the report ------------------------------------------------------------------------------------------
def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(cells: Sequence[Cell]) -> str:
    """Return one row per cell: rows, sites, each job's seconds, load seconds, the largest client's RSS."""
    header = (f"{'rows':>9} {'sites':>5} {'stats_s':>8} {'train_s':>8} {'shap_s':>8} {'load_s':>7} "
              f"{'max_client_rss_mb':>17} {'load1':>11}  note")
    lines = [header]
    for cell in sorted(cells, key=lambda c: (c.sites, c.rows)):
        note = cell.error or f"up {cell.up_s or 0:.0f}s, data {cell.data_s or 0:.0f}s"
        lines.append(
            f"{cell.rows:>9} {cell.sites:>5} {_num(cell.job_s.get('stats')):>8} {_num(cell.job_s.get('train')):>8} "
            f"{_num(cell.job_s.get('shap')):>8} {_num(cell.load_s, 2):>7} {_num(cell.max_rss_mb, 0):>17} "
            f"{cell.load_avg[0]:>5.2f}/{cell.load_avg[1]:<5.2f}  {note}")
    return "\n".join(lines)


def _ratio(top: float | None, bottom: float | None) -> str:
    return "n/a" if top is None or not bottom else f"{top / bottom:.2f}"


def key_line(cells: Sequence[Cell]) -> str:
    """Return the last line: the 1k->1M growth of each job (4 sites) and the 16/4 sites ratio (1k rows)."""
    done = {cell.key: cell for cell in cells if cell.complete}
    small, large = done.get((1_000, 4)), done.get((1_000_000, 4))
    sixteen = done.get((1_000, 16))

    def growth(job: str) -> str:
        return _ratio(large.job_s[job] if large else None, small.job_s[job] if small else None)

    total = lambda cell: sum(cell.job_s.values()) if cell else None  # noqa: E731
    return (f"shap_growth_1k_to_1m={growth('shap')} stats_growth_1k_to_1m={growth('stats')} "
            f"train_growth_1k_to_1m={growth('train')} sites16_over_sites4={_ratio(total(sixteen), total(small))}")


def read_results(path: Path) -> dict[tuple[int, int], Cell]:
    """Return the cells a results file kept (the latest of each rows x sites)."""
    cells: dict[tuple[int, int], Cell] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                raw = json.loads(line)
                raw["load_avg"] = tuple(raw["load_avg"])
                cell = Cell(**raw)
                cells[cell.key] = cell
    return cells


def _ints(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=_ints, default=list(ROWS), help="rows per site, comma-separated")
    parser.add_argument("--sites", type=_ints, default=list(SITES), help="site counts, comma-separated")
    parser.add_argument("--timeout-s", type=float, default=3600, help="the bound of each cell's three jobs")
    parser.add_argument("--port", type=int, help="NVFlare port of the first cell, +1 per cell (default: free)")
    parser.add_argument("--home-prefix", default=os.path.join(tempfile.gettempdir(), "flareflow-scale-home-"),
                        help="path prefix of each cell's stack folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shap-max-rows", type=lambda v: None if v.lower() in ("none", "null") else int(v),
                        default=argparse.SUPPRESS, help="override shap.max_rows (none: every row is explained)")
    parser.add_argument("--results", type=Path, help="JSON lines file: earlier cells are reported, new ones added")
    args = parser.parse_args(argv)
    # a plain SIGTERM would skip the cleanup: exit through ``finally`` so the cell's stack is stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    overrides = {"shap": {"max_rows": args.shap_max_rows}} if "shap_max_rows" in vars(args) else None
    cells = read_results(args.results) if args.results else {}
    grid = sorted(((r, s) for r in args.rows for s in args.sites), key=lambda rs: rs[0] * rs[1])
    for index, (rows, sites) in enumerate(grid):
        log.info("cell %d rows x %d sites (load %.2f)", rows, sites, os.getloadavg()[0])
        with stdout_to_stderr():
            cell = run_cell(rows, sites, timeout_s=args.timeout_s, home_prefix=args.home_prefix, seed=args.seed,
                            port=args.port + index if args.port else None, overrides=overrides)
        log.info("cell done: %s", json.dumps(asdict(cell)))
        cells[cell.key] = cell
        if args.results:
            with args.results.open("a") as out:
                out.write(json.dumps(asdict(cell)) + "\n")
    print(table(list(cells.values())))
    print(key_line(list(cells.values())))
    return 0 if all(cell.complete for cell in cells.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
