"""Which job reads which setting: the placement rules follow the code that reads the merged configs.

A job file may set only what its job reads (``flareflow.config.placement.READS``). If a job's code
starts reading another section, a file setting it would be refused: this test notices first, by reading
every ``config["section"]["key"]`` in the job builders (the operator and the DAG read ``federation`` and
``warehouse``, which every job has).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from flareflow.config.placement import PIPELINE_WIDE, READS, SHARED, readers
from flareflow.config.schema import JOBS, JobConfig

HOSPITAL = Path(__file__).resolve().parents[2] / "hospital" / "fl_tasks"


def _config_reads(*sources: Path) -> set[str]:
    """Return what modules read of ``config``: ``section`` for ``config["section"]``, ``section.key`` for
    ``config["section"]["key"]``."""
    reads: set[str] = set()
    for source in sources:
        tree = ast.parse(source.read_text())
        subscripts = [n for n in ast.walk(tree) if isinstance(n, ast.Subscript) and isinstance(n.slice, ast.Constant)]
        on_config = {id(n): n for n in subscripts if isinstance(n.value, ast.Name) and n.value.id == "config"}
        keyed = {id(n.value): n for n in subscripts if id(n.value) in on_config}
        for key, node in on_config.items():
            outer = keyed.get(key)
            reads.add(f"{node.slice.value}.{outer.slice.value}" if outer else node.slice.value)
    return reads


def _job_reads(job: str) -> set[str]:
    return _config_reads(HOSPITAL / job / "job.py", HOSPITAL / "jobs.py")


@pytest.mark.parametrize("job", JOBS)
def test_every_setting_a_job_reads_may_be_set_in_its_file(job: str) -> None:
    reads = _job_reads(job)
    assert reads, f"no config reads found in fl_tasks/{job}/job.py"
    for key in reads:
        section = key.split(".")[0]
        assert any(key == r or key.startswith(f"{r}.") for r in READS[job]) or (
            section in PIPELINE_WIDE), f"the {job} job reads {key}, which {job}.yaml may not set"


@pytest.mark.parametrize("job", JOBS)
def test_a_job_file_may_set_only_what_its_job_reads(job: str) -> None:
    reads = _job_reads(job)
    for allowed in READS[job]:
        assert any(read == allowed or read.startswith(f"{allowed}.") for read in reads), (
            f"{job}.yaml may set {allowed}, which the {job} job never reads")


def test_every_section_has_a_reader_or_is_pipeline_wide() -> None:
    for section in JobConfig.model_fields:
        assert readers(section) or section in PIPELINE_WIDE, section
    assert set(PIPELINE_WIDE) <= set(SHARED)
    assert readers("training.seed") == ["train", "shap"]
    assert readers("training.rounds") == ["train"]
