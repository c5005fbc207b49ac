"""The slot measure itself: a task that waits for its job in the worker is counted, a deferred one is not."""

from __future__ import annotations

from benchmarks._slots import Sample, measure

RUNS = ["run_a", "run_b"]
OWNERS = {"job-a": ("run_a", "federated_stats"), "job-b": ("run_b", "federated_stats")}


def samples(*moments: tuple[dict[str, str], dict[tuple[str, str], str | None]]) -> list[Sample]:
    return [Sample(float(at), jobs, tasks) for at, (jobs, tasks) in enumerate(moments)]


def test_a_task_running_while_its_own_job_runs_holds_a_slot() -> None:
    blocking = samples(
        ({"job-a": "SUBMITTED"}, {("run_a", "federated_stats"): "running"}),
        ({"job-a": "RUNNING"}, {("run_a", "federated_stats"): "running"}),
        ({"job-a": "FINISHED:COMPLETED"}, {("run_a", "federated_stats"): "success"}),
    )
    figures = measure(blocking, OWNERS, RUNS)
    assert figures.max_slots_held_while_jobs_ran == 1
    assert figures.runs["run_a"].slot_held_while_job_ran_s == 1.0
    assert figures.max_deferred_while_running == 0


def test_deferred_tasks_hold_none_while_other_tasks_use_the_slot() -> None:
    deferred = samples(
        ({"job-a": "SUBMITTED"}, {("run_a", "federated_stats"): "running", ("run_b", "federated_stats"): None}),
        ({"job-a": "RUNNING", "job-b": "SUBMITTED"},
         {("run_a", "federated_stats"): "deferred", ("run_b", "federated_stats"): "running"}),
        ({"job-a": "RUNNING", "job-b": "RUNNING"},
         {("run_a", "federated_stats"): "deferred", ("run_b", "federated_stats"): "deferred"}),
        ({"job-a": "FINISHED:COMPLETED", "job-b": "RUNNING"},
         {("run_a", "federated_stats"): "running", ("run_b", "federated_stats"): "deferred"}),
    )
    figures = measure(deferred, OWNERS, RUNS)
    assert figures.max_slots_held_while_jobs_ran == 0
    assert figures.max_concurrent_jobs == 2
    assert figures.max_deferred_while_running == 2
    assert figures.max_slots_in_use == 1
    assert figures.max_running == 1
    # run_b submitted, and run_a fetched its result, while the other run's job ran
    assert figures.tasks_run_while_jobs_ran == {("run_b", "federated_stats"), ("run_a", "federated_stats")}
    assert figures.jobs_seen_running == {"job-a", "job-b"}
    assert not figures.unowned_jobs


def test_a_running_job_no_task_owns_is_reported() -> None:
    figures = measure(samples(({"job-x": "RUNNING"}, {}), ({"job-x": "RUNNING"}, {})), OWNERS, RUNS)
    assert figures.unowned_jobs == {"job-x"}
