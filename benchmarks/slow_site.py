"""A slow hospital: every job still aggregates every site, and waits no longer than the slowest site.

Issue 3, requirement 3, on the real statistics and SHAP jobs of a local NVFlare POC. One site is made
slower than the others by the benchmark (or the test), never by flareflow's code:

- **statistics**: the site holds the result of each ``fed_stats`` task for ``--delay-s`` seconds, through
  a site-local NVFlare task result filter (``tests/slow_sites/site_delay.py``, copied into the site's
  ``local/custom/`` and named in its ``local/privacy.json`` for the duration of the job only);
- **SHAP**: the site's data file is replaced, for the duration of the job only, by a resample of its own
  rows, sized so that explaining them takes about ``--shap-extra-s`` seconds more (the real SHAP compute).

The SHAP job explains a logistic regression trained here on the slow site's own rows, as its client
encodes them (the training job is not what is measured). Figures per job, all from the job's own
records: the server's aggregation wall time (SHAP: ``wait_s`` of its result; statistics: from the
workflow's start to its last site result, in the server's job log), each site's own time on its tasks
(its NVFlare job log: task received to result ready; SHAP also reports its ``compute_s``), the NVFlare
job's wall time (job meta: submitted to ended) and the sites aggregated. ``overhead_s`` is the
aggregation wall time minus the slowest site's own time.

    .venv/bin/python benchmarks/slow_site.py [--site switzerland] [--delay-s 25] [--shap-extra-s 30]

brings up its own stack on a free NVFlare port (never 8002), stops it at the end, prints the figures and,
as its last line, ``sites=4/4 shap_wall_s=… slowest_site_s=… overhead_s=…`` with the statistics job's
figures; it exits 1 when a site is missing or the SHAP overhead exceeds ``BOUND_S``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

if __package__ in (None, ""):  # run as a script: make the ``benchmarks`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fl_tasks.shap.job as shap_job
import fl_tasks.stats.job as stats_job
from benchmarks._federation import (
    Job,
    JobRun,
    job_config,
    job_wall_s,
    private_stack,
    run_jobs_detailed,
    stdout_to_stderr,
)
from fl_tasks.data import SITE_DATA_DIR, FeatureSpec, load_model_inputs
from fl_tasks.jobs import client_settings
from fl_tasks.shap.background import background_rows
from fl_tasks.shap.explain import mean_abs_shap
from fl_tasks.stats.result import read_result
from fl_tasks.train.model import get_params, initial_params, make_classifier, train_locally
from flareflow.local.stack import Stack

log = logging.getLogger("benchmarks.slow_site")

PROJECT = Path(__file__).resolve().parents[1]
#: the site-local filter that makes a site slow (test material, not part of flareflow)
SITE_DELAY_FILTER = PROJECT / "tests" / "slow_sites" / "site_delay.py"
#: every record of the simulated admissions is used
UNTIL = "2026-11-01"
#: the smallest hospital: slow by injection, not because it normally has the most rows
SLOW_SITE = "switzerland"
#: how long the slow site holds each statistics result (two rounds: twice this per job)
STATS_DELAY_S = 25.0
#: how much longer the slow site's SHAP compute should take, sized on this machine before the job
SHAP_EXTRA_S = 30.0
#: the requirement: the SHAP aggregation waits at most this much longer than the slowest site
BOUND_S = 5.0
#: the SHAP speed is measured before the job, the best of this many runs on this many rows
PROBES = 3
PROBE_ROWS = 15
STATS_TASK = "fed_stats"
_PRIVACY_FILE = "privacy.json"
_LOG_TIME = "%Y-%m-%d %H:%M:%S,%f"


# -- making one site slow, and undoing it ------------------------------------------------------------
@contextmanager
def delayed_results(stack: Stack, site: str, delay_s: float, tasks: Sequence[str]) -> Iterator[Path]:
    """Make ``site`` hold each result of ``tasks`` for ``delay_s`` seconds in the jobs started meanwhile.

    The site's default privacy scope gets the delay filter; NVFlare's job process reads the site's
    ``local/privacy.json`` and ``local/custom/`` when a job starts there, so the running client needs no
    restart. Both are removed afterwards. A site that already has a privacy policy is refused.

    :param stack: the running stack
    :param site: the site to slow down
    :param delay_s: seconds each result is held
    :param tasks: the task names whose results are held
    :returns: the site's workspace
    """
    workspace = stack.poc().site_workspace(site)
    local = workspace / "local"
    policy = local / _PRIVACY_FILE
    if policy.exists():
        raise RuntimeError(f"{policy} exists: refusing to replace a site's own privacy policy")
    custom = local / "custom"
    created = not custom.exists()
    module = custom / SITE_DELAY_FILTER.name
    if module.exists():
        raise RuntimeError(f"{module} exists: refusing to replace a site's own code")
    custom.mkdir(exist_ok=True)
    shutil.copy(SITE_DELAY_FILTER, module)
    scope = {"name": "slow-site", "task_result_filters": [
        {"path": f"{SITE_DELAY_FILTER.stem}.DelayResult", "args": {"delay_s": delay_s, "tasks": list(tasks)}}]}
    policy.write_text(json.dumps({"scopes": [scope], "default_scope": "slow-site"}, indent=1))
    log.info("%s holds the results of %s for %.0f s", site, list(tasks), delay_s)
    try:
        yield workspace
    finally:
        policy.unlink(missing_ok=True)
        module.unlink(missing_ok=True)
        shutil.rmtree(custom / "__pycache__", ignore_errors=True)
        if created:
            shutil.rmtree(custom, ignore_errors=True)


@contextmanager
def more_rows(stack: Stack, site: str, file_name: str, rows: int, seed: int = 0) -> Iterator[Path]:
    """Replace ``site``'s data file by ``rows`` rows resampled from its own rows; restore it afterwards.

    :param stack: the running stack
    :param site: the site to give more data
    :param file_name: the data file's name (``data.file_name``)
    :param rows: how many rows the site has meanwhile
    :param seed: the resampling seed
    :returns: the site's data file
    """
    data_file = stack.poc().site_workspace(site) / SITE_DATA_DIR / file_name
    original = data_file.with_name(f".{data_file.name}.slow-site-original")
    shutil.copy2(data_file, original)
    try:
        frame = pd.read_csv(original)
        resampled = frame.sample(n=rows, replace=True, random_state=seed)
        tmp = data_file.with_name(f".{data_file.name}.slow-site-tmp")
        resampled.to_csv(tmp, index=False)
        os.replace(tmp, data_file)
        log.info("%s has %d rows instead of %d", site, rows, len(frame))
        yield data_file
    finally:
        os.replace(original, data_file)


# -- the jobs' own records ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Span:
    """One task at one site: when it began and ended (log clock; all processes share one machine)."""

    site: str
    task_id: str
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def _records(log_json: Path) -> Iterator[dict[str, Any]]:
    for line in log_json.read_text(errors="replace").splitlines():
        if line.strip():
            record = json.loads(line)
            record["time"] = datetime.strptime(record["asctime"], _LOG_TIME)
            yield record


def _field(text: str, key: str) -> str:
    """Return ``value`` of ``key=value`` or ``key:value`` in an NVFlare log message or context."""
    for separator in ("=", ":"):
        marker = f"{key}{separator}"
        if marker in text:
            return text.split(marker, 1)[1].split(",")[0].split(" ")[0].rstrip("]")
    return ""


def site_spans(workspace: Path, site: str, job_id: str) -> list[Span]:
    """Return the site's own time on each of its tasks of a job: received to result ready (after its
    result filters), from the ``ClientRunner`` records of the site's job log.

    :param workspace: the site's workspace root
    :param site: the site
    :param job_id: the NVFlare job id
    """
    started: dict[str, datetime] = {}
    spans = []
    for record in _records(workspace / job_id / "log.json"):
        if record["name"] != "ClientRunner":
            continue
        message = record["message"]
        if message.startswith("got task assignment:"):
            started[_field(message, "id")] = record["time"]
        elif message == "finished processing task":
            task_id = _field(record["fl_ctx"], "task_id")
            if task_id in started:
                spans.append(Span(site, task_id, started.pop(task_id), record["time"]))
    return spans


def server_spans(server_workspace: Path) -> list[Span]:
    """Return, from the server's job log, each site's tasks: handed out to the result received."""
    sent: dict[str, datetime] = {}
    spans = []
    for record in _records(server_workspace / "log.json"):
        if record["name"] != "ServerRunner":
            continue
        message = record["message"]
        if message.startswith("sent task assignment to client."):
            sent[_field(message, "task_id")] = record["time"]
        elif message.startswith("got result from client"):
            task_id = _field(message, "id")
            site = message.split("got result from client ", 1)[1].split(" ")[0]
            if task_id in sent:
                spans.append(Span(site, task_id, sent.pop(task_id), record["time"]))
    return spans


def workflow_started(server_workspace: Path) -> datetime:
    """Return when the job's server workflow started (``ServerRunner``: workflow controller started)."""
    for record in _records(server_workspace / "log.json"):
        if record["name"] == "ServerRunner" and record["message"].startswith("Workflow controller"):
            return record["time"]
    raise ValueError(f"no workflow start in {server_workspace / 'log.json'}")


# -- one job's figures -------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobTimes:
    """One job's figures.

    :param name: the job name
    :param job_id: the NVFlare job id
    :param sites: the configured sites
    :param aggregated: the sites the job's result holds
    :param wall_s: the server's aggregation wall time
    :param site_s: each site's own time on its tasks (its job log), summed over the job's tasks
    :param server_s: each site's tasks as the server saw them (handed out to result received), summed
    :param job_s: the NVFlare job's wall time (submitted to ended)
    :param compute_s: each site's reported compute time (SHAP only)
    :param pickup_s: when each site took its first task, after the server's workflow started (its job
        process starting up meanwhile)
    """

    name: str
    job_id: str
    sites: list[str]
    aggregated: list[str]
    wall_s: float
    site_s: dict[str, float]
    server_s: dict[str, float]
    job_s: float
    compute_s: dict[str, float]
    pickup_s: dict[str, float]

    @property
    def slowest(self) -> str:
        return max(self.site_s, key=self.site_s.__getitem__)

    @property
    def slowest_site_s(self) -> float:
        return self.site_s[self.slowest]

    @property
    def overhead_s(self) -> float:
        """Return how much longer the aggregation took than the slowest site's own time."""
        return self.wall_s - self.slowest_site_s

    def others_max_s(self, site: str) -> float:
        """Return the longest own time of any site but ``site``."""
        return max(seconds for other, seconds in self.site_s.items() if other != site)


def job_times(stack: Stack, run: JobRun, aggregated: Sequence[str], wall_s: float | None = None,
              compute_s: Mapping[str, float] | None = None) -> JobTimes:
    """Collect a completed job's figures from its records.

    :param stack: the stack the job ran on
    :param run: the completed job
    :param aggregated: the sites its result holds
    :param wall_s: the aggregation wall time the job reports itself (default: the server's log, from
        the workflow's start to the last site result)
    :param compute_s: each site's reported compute time, if the job reports one
    """
    poc = stack.poc()
    site_s = {site: sum(s.seconds for s in site_spans(poc.site_workspace(site), site, run.job_id))
              for site in poc.sites}
    spans = server_spans(run.server_workspace)
    server_s = {site: sum(s.seconds for s in spans if s.site == site) for site in poc.sites}
    started = workflow_started(run.server_workspace)
    pickup_s = {site: (min(s.start for s in spans if s.site == site) - started).total_seconds()
                for site in {s.site for s in spans}}
    if wall_s is None:
        wall_s = (max(s.end for s in spans) - started).total_seconds()
    return JobTimes(run.job.name, run.job_id, list(poc.sites), sorted(aggregated), wall_s, site_s, server_s,
                    job_wall_s(run.meta), dict(compute_s or {}), pickup_s)


# -- the SHAP job's inputs ---------------------------------------------------------------------------
def _site_inputs(
    stack: Stack, config: Mapping[str, Any], stats_result: Path, site: str
) -> tuple[np.ndarray, np.ndarray]:
    """Return the site's standardized rows and labels exactly as its clients read them."""
    return load_model_inputs(stack.poc().site_workspace(site), client_settings(config, UNTIL, str(stats_result)))


def site_model(stack: Stack, config: Mapping[str, Any], stats_result: Path, site: str, work: Path) -> Path:
    """Train the clients' logistic regression on one site's own rows; write it as a training result.

    :param stack: the running stack
    :param config: the merged ``shap`` job config (its ``training`` section is used)
    :param stats_result: the federated statistics file (global mean/stddev)
    :param site: the site whose rows it learns from
    :param work: the folder to write ``model.json`` into
    """
    x, y = _site_inputs(stack, config, stats_result, site)
    training = config["training"]
    model = train_locally(make_classifier(training), initial_params(x.shape[1]), x, y, seed=training["seed"])
    path = work / "model.json"
    path.write_text(json.dumps({"model": get_params(model)}))
    return path


def shap_rows_for(
    stack: Stack, config: Mapping[str, Any], stats_result: Path, model_file: Path, site: str, extra_s: float,
) -> tuple[int, int, float]:
    """Size the slow site's data: return its own row count, the row count whose SHAP compute takes about
    ``extra_s`` seconds longer than the largest other site's on this machine, and the seconds per row
    measured here (the best of ``PROBES`` runs with the job's explainer, background and model: load that
    comes and goes during the job then slows the site down more, never less).

    :param stack: the running stack
    :param config: the merged ``shap`` job config
    :param stats_result: the federated statistics file (the background is drawn from it)
    :param model_file: the model the job explains
    :param site: the site to size
    :param extra_s: how much longer its compute should take
    """
    options = config["shap"]
    if options["max_rows"]:
        raise ValueError("shap.max_rows caps the rows a site explains: more data would not slow it down")
    x, _ = _site_inputs(stack, config, stats_result, site)
    features = FeatureSpec.from_dict(config["data"]["features"]).columns
    seed = config["training"]["seed"]
    background = background_rows(read_result(stats_result, features), options["background_size"], seed=seed)
    model = json.loads(model_file.read_text())["model"]
    probe = x[:PROBE_ROWS]
    timings = []
    for _ in range(PROBES):
        started = time.perf_counter()
        mean_abs_shap(model, background, probe, explainer=options["explainer"], samples=options["samples"],
                      seed=seed)
        timings.append((time.perf_counter() - started) / len(probe))
    per_row = min(timings)
    largest = max(len(_site_inputs(stack, config, stats_result, other)[1]) for other in stack.sites() if other != site)
    return len(x), max(len(x), largest + math.ceil(extra_s / per_row)), per_row


# -- the measurement ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SlowSiteRun:
    """Both jobs with one slow site: their figures, their results and how the site was slowed.

    :param site: the slow site
    :param delay_s: how long it held each statistics result
    :param own_rows: its own row count
    :param shap_rows: its row count during the SHAP job
    :param per_row_s: SHAP seconds per row measured before the job
    :param stats: the statistics job's figures
    :param shap: the SHAP job's figures
    :param stats_raw: the statistics job's result file, parsed
    :param shap_result: the SHAP job's result file, parsed
    """

    site: str
    delay_s: float
    own_rows: int
    shap_rows: int
    per_row_s: float
    stats: JobTimes
    shap: JobTimes
    stats_raw: dict[str, Any]
    shap_result: dict[str, Any]


def measure(
    stack: Stack, work: Path, *, site: str = SLOW_SITE, delay_s: float = STATS_DELAY_S,
    shap_extra_s: float = SHAP_EXTRA_S, overrides: Mapping[str, Any] | None = None,
) -> SlowSiteRun:
    """Run the statistics job, then the SHAP job, each with ``site`` slowed down; leave the site as it was.

    :param stack: a running local stack
    :param work: a folder for the jobs' exports and results
    :param site: the site to slow down
    :param delay_s: how long it holds each statistics result
    :param shap_extra_s: how much longer its SHAP compute should take
    :param overrides: config settings merged over both jobs' configs
    """
    stats_config = job_config(stack, "stats", overrides)
    with delayed_results(stack, site, delay_s, [STATS_TASK]):
        (stats_run,) = run_jobs_detailed(
            stack, [Job(stats_job, "slow-site-stats", {"config": stats_config, "until": UNTIL})], work)
    stats_raw = json.loads(stats_run.result_file.read_text())
    stats = job_times(stack, stats_run, sorted(stats_job.result_sites(stats_raw)))

    # the site is slowed down by more rows, so it must explain every one (shap.max_rows would cap them)
    shap_config = job_config(stack, "shap", {**dict(overrides or {}), "shap": {
        **dict((overrides or {}).get("shap", {})), "max_rows": None}})
    model_file = site_model(stack, shap_config, stats_run.result_file, site, work)
    own_rows, rows, per_row_s = shap_rows_for(stack, shap_config, stats_run.result_file, model_file, site,
                                              shap_extra_s)
    args = {"config": shap_config, "until": UNTIL, "stats_result": str(stats_run.result_file),
            "training_result": str(model_file)}
    with more_rows(stack, site, shap_config["data"]["file_name"], rows):
        (shap_run,) = run_jobs_detailed(stack, [Job(shap_job, "slow-site-shap", args)], work)
    shap_result = json.loads(shap_run.result_file.read_text())
    shap = job_times(stack, shap_run, sorted(shap_job.result_sites(shap_result)), wall_s=shap_result["wait_s"],
                     compute_s={s: float(v["compute_s"]) for s, v in shap_result["sites"].items()})
    return SlowSiteRun(site, delay_s, own_rows, rows, per_row_s, stats, shap, stats_raw, shap_result)


# -- the verdict and the report ----------------------------------------------------------------------
def checks(run: SlowSiteRun, *, slower_by_s: float = 20.0, bound_s: float = BOUND_S) -> list[tuple[bool, str]]:
    """Return each condition with whether it holds: every site aggregated, the site really slower, the
    SHAP aggregation within ``bound_s`` of the slowest site's own time."""
    shap_compute = run.shap.compute_s
    slower = {
        "statistics (own time on its tasks)": (run.stats.site_s[run.site], run.stats.others_max_s(run.site)),
        "SHAP (reported compute_s)": (shap_compute[run.site],
                                      max(v for s, v in shap_compute.items() if s != run.site)),
    }
    result = [(times.aggregated == sorted(times.sites),
               f"{times.name}: sites aggregated {len(times.aggregated)}/{len(times.sites)}")
              for times in (run.stats, run.shap)]
    result += [(slow - other >= slower_by_s, f"{job}: {run.site} {slow:.1f} s, the next slowest {other:.1f} s "
                f"(slower by {slow - other:.1f} s >= {slower_by_s:.0f})") for job, (slow, other) in slower.items()]
    result.append((run.shap.overhead_s <= bound_s,
                   f"SHAP aggregation {run.shap.wall_s:.1f} s - slowest site {run.shap.slowest} "
                   f"{run.shap.slowest_site_s:.1f} s = {run.shap.overhead_s:+.1f} s <= {bound_s:.0f}"))
    return result


def failures(results: Sequence[tuple[bool, str]]) -> list[str]:
    """Return the descriptions of the checks that do not hold."""
    return [text for ok, text in results if not ok]


def _table(times: JobTimes) -> list[str]:
    rows = [("own time", times.site_s), ("server saw", times.server_s), ("picked up", times.pickup_s)]
    if times.compute_s:
        rows.append(("compute_s", times.compute_s))
    lines = [f"  {'':<12}" + "".join(f"{site:>15}" for site in times.sites)]
    lines += [f"  {label:<12}" + "".join(f"{values.get(site, math.nan):>15.1f}" for site in times.sites)
              for label, values in rows]
    return lines


def report(run: SlowSiteRun) -> str:
    """Return the full report: how the site was slowed, both jobs' figures, the checks, the key line."""
    stats, shap = run.stats, run.shap
    compute = shap.compute_s.get(shap.slowest, math.nan)
    lines = [
        f"slow site {run.site}: statistics results held {run.delay_s:.0f} s each; SHAP on {run.shap_rows} rows "
        f"instead of {run.own_rows} ({run.per_row_s * 1000:.1f} ms/row measured here)",
        "",
        f"statistics ({stats.job_id}): aggregation {stats.wall_s:.1f} s, job {stats.job_s:.1f} s, "
        f"slowest {stats.slowest} {stats.slowest_site_s:.1f} s, overhead {stats.overhead_s:+.1f} s",
        *_table(stats),
        f"SHAP ({shap.job_id}): aggregation (wait_s) {shap.wall_s:.1f} s, job {shap.job_s:.1f} s, "
        f"slowest {shap.slowest} {shap.slowest_site_s:.1f} s of which compute {compute:.1f} s, "
        f"overhead {shap.overhead_s:+.1f} s",
        *_table(shap),
        "  own time: the site's job log, tasks received to results ready (SHAP: with the client script's",
        "  start-up, which the task waits for); server saw: handed out to received; picked up: the first",
        "  task handed out, after the server's workflow started (the site's job process starting up)",
        "",
        "checks:",
        *(f"  {'PASS' if ok else 'FAIL'} {text}" for ok, text in checks(run)),
        key_line(run),
    ]
    return "\n".join(lines)


def key_line(run: SlowSiteRun) -> str:
    """Return the last line: sites aggregated, SHAP wall, slowest site and overhead, then the statistics'."""
    stats, shap = run.stats, run.shap
    return (f"sites={len(shap.aggregated)}/{len(shap.sites)} shap_wall_s={shap.wall_s:.1f} "
            f"slowest_site_s={shap.slowest_site_s:.1f} overhead_s={shap.overhead_s:.1f} "
            f"slowest_compute_s={shap.compute_s.get(shap.slowest, math.nan):.1f} shap_job_s={shap.job_s:.1f} "
            f"stats_sites={len(stats.aggregated)}/{len(stats.sites)} stats_wall_s={stats.wall_s:.1f} "
            f"stats_slowest_site_s={stats.slowest_site_s:.1f} stats_overhead_s={stats.overhead_s:.1f} "
            f"stats_job_s={stats.job_s:.1f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", default=SLOW_SITE, help="the site to slow down")
    parser.add_argument("--delay-s", type=float, default=STATS_DELAY_S, help="statistics: seconds each result is held")
    parser.add_argument("--shap-extra-s", type=float, default=SHAP_EXTRA_S,
                        help="SHAP: how much longer the site's compute should take")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    with (stdout_to_stderr(), tempfile.TemporaryDirectory(prefix="flareflow-slow-site-") as work,
          private_stack() as stack):
        run = measure(stack, Path(work), site=args.site, delay_s=args.delay_s, shap_extra_s=args.shap_extra_s)
    print(report(run))
    return 1 if failures(checks(run)) else 0


if __name__ == "__main__":
    sys.exit(main())
