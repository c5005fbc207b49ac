"""Deferrable for real: several monthly runs at once on ONE worker slot, and who held it while jobs ran.

Brings up its own local stack (free NVFlare port, never 8002; an Execution API on a free port, never
8080), starts Airflow's real scheduler, dag-processor and triggerer with the LocalExecutor limited to
one worker slot (``core.parallelism=1``), backfills three data months at once and samples about every
second which NVFlare jobs run (Flare admin API) and which task instances hold the slot (metadata
database). See ``benchmarks/_slots.py`` for the exact measure: an NVFlare task holds a slot while its
job ran when, in one sample, its own job is ``RUNNING`` and the task is ``queued`` or ``running``.

    .venv/bin/python benchmarks/deferral.py [--months 2026-08 2026-09 2026-10] [--rounds R] [--shap-samples S]
                                            [--slots 1] [--celery-workers N] [--timeout 3600]

``--celery-workers N`` runs the tasks on N Celery workers of one task process each (N slots; Redis
broker as for ``flareflow up --executor celery``) instead of the LocalExecutor's ``--slots``.

prints one line per run, then the totals, the last line being
``runs=… max_concurrent_nvflare_jobs=… worker_slots_held_while_jobs_ran=… wall_s=…``.
It exits 1 when a run failed or a task held a slot while its job ran.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the ``benchmarks`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._airflow import Airflow, one_slot_airflow, running
from benchmarks._federation import private_stack
from benchmarks._slots import Outcome, backfill_and_measure
from flareflow.local.workers import find_broker, workers

MONTHS = ("2026-08", "2026-09", "2026-10")


def report(outcome: Outcome, slots: int) -> list[str]:
    """Return the printed lines: one per run, then the totals (last)."""
    figures = outcome.figures
    lines = []
    for run_id in outcome.run_ids:
        run = figures.runs[run_id]
        lines.append(f"run={run_id} state={outcome.states[run_id]} wall_s={outcome.run_wall_s[run_id]:.0f} "
                     f"nvflare_job_running_s={run.job_running_s:.0f} "
                     f"deferred_while_job_ran_s={run.deferred_while_job_ran_s:.0f} "
                     f"slot_held_while_job_ran_s={run.slot_held_while_job_ran_s:.0f}")
    lines.append(f"worker_slots={slots} samples={figures.samples} nvflare_jobs_seen_running="
                 f"{len(figures.jobs_seen_running)} unattributed_jobs={len(figures.unowned_jobs)} "
                 f"max_tasks_deferred_while_their_jobs_ran={figures.max_deferred_while_running} "
                 f"max_queued_or_running={figures.max_slots_in_use} max_running={figures.max_running} "
                 f"tasks_run_in_the_slot_while_jobs_ran={len(figures.tasks_run_while_jobs_ran)}")
    lines.append(f"runs={len(outcome.run_ids)} max_concurrent_nvflare_jobs={figures.max_concurrent_jobs} "
                 f"worker_slots_held_while_jobs_ran={figures.max_slots_held_while_jobs_ran} "
                 f"wall_s={outcome.wall_s:.0f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--months", nargs="+", default=list(MONTHS), help="consecutive data months YYYY-MM")
    parser.add_argument("--rounds", type=int, default=None, help="FedAvg rounds per run (default: the config's)")
    parser.add_argument("--shap-samples", type=int, default=None, help="SHAP samples per row (default: the config's)")
    parser.add_argument("--slots", type=int, default=1, help="the LocalExecutor's worker slots")
    parser.add_argument("--celery-workers", type=int, default=0,
                        help="run on this many Celery workers of one process each instead (0: LocalExecutor)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds the runs may take together")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    conf: dict[str, Any] = {"rounds": options.rounds} if options.rounds else {}
    if options.shap_samples:
        conf["config_overrides"] = {"shap": {"samples": options.shap_samples}}
    slots = options.celery_workers or options.slots
    with private_stack("flareflow-deferral-") as stack, tempfile.TemporaryDirectory(prefix="deferral-") as run_dir:
        if options.celery_workers:
            broker = find_broker(Path(run_dir) / "redis")
            try:
                airflow = Airflow(stack, Path(run_dir), slots=slots, broker_url=broker.url,
                                  workers=workers(Path(run_dir), options.celery_workers))
                with running(airflow):
                    outcome = backfill_and_measure(airflow, options.months, conf, timeout_s=options.timeout)
            finally:
                broker.release()
        else:
            with one_slot_airflow(stack, Path(run_dir), slots=slots) as airflow:
                outcome = backfill_and_measure(airflow, options.months, conf, timeout_s=options.timeout)
    print(json.dumps({"conf": conf, "months": options.months, "celery_workers": options.celery_workers}))
    for line in report(outcome, slots):
        print(line)
    ok = all(state == "success" for state in outcome.states.values())
    return 0 if ok and outcome.figures.max_slots_held_while_jobs_ran == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
