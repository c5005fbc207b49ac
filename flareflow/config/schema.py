"""The configuration schema: every section of a job's merged config, checked strictly.

The ``data`` section, the data contract, lives in ``flareflow.config.contract``. A check across keys
reports findings naming the keys involved (``flareflow.config.base``), so the loader can blame the file
that set one of them (see ``flareflow.config.loader``).
"""

from __future__ import annotations

import functools
import math
import re
import zoneinfo
from datetime import datetime
from typing import Annotated, Any, Literal

from croniter import CroniterBadDateError, croniter
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from flareflow.config.base import Section, finding, raise_findings
from flareflow.config.contract import Data

JOBS: tuple[str, ...] = ("stats", "train", "shap")
SITE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
#: names of the aggregate over all sites (statistics, warehouse) and of NVFlare's own parts and targets
RESERVED_SITES: tuple[str, ...] = ("global", "server", "all")
#: the longest timeout or interval: a week (a monthly run that waits longer has failed)
MAX_SECONDS = 7 * 24 * 3600
#: seeds go to numpy and scikit-learn, which take 0 .. 2**32 - 1
MAX_SEED = 2**32 - 1

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Identifier = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]


def _site_name(name: Any) -> Any:
    if isinstance(name, bool) or not isinstance(name, str):
        raise ValueError(f'a site name is text (its NVFlare client name): quote it ("{name}")')
    if name.lower() in RESERVED_SITES:
        raise ValueError(f"{name!r} is reserved ({', '.join(RESERVED_SITES)} name the aggregate of all sites "
                         "or parts of NVFlare): name the site otherwise")
    if not SITE_NAME.fullmatch(name):
        raise ValueError("a site name (its NVFlare client name) is 1-63 lower-case letters, digits and '-', "
                         "starting with a letter or digit")
    return name


def _whole_seconds(value: Any) -> Any:
    if isinstance(value, float):
        cut = int(value) if math.isfinite(value) else None
        never = ", which NVFlare reads as no timeout" if cut == 0 else ""
        detail = f" ({value} would be cut to {cut}{never})" if cut is not None else ""
        raise ValueError(f"whole seconds, as NVFlare takes them{detail}")
    return value


#: a timeout or interval: whole seconds, at least 1, at most a week
Seconds = Annotated[int, BeforeValidator(_whole_seconds), Field(ge=1, le=MAX_SECONDS)]
SiteName = Annotated[str, BeforeValidator(_site_name)]


class Federation(Section):
    sites: list[SiteName] = Field(min_length=1)
    min_sites: PositiveInt | None = None
    conn_id: Identifier = "nvflare_default"
    gate_timeout_s: Seconds = 120
    task_timeout_s: Seconds = 600
    job_timeout_s: Seconds = 3600
    poll_interval_s: Seconds = 5

    @field_validator("sites")
    @classmethod
    def _unique(cls, sites: list[str]) -> list[str]:
        seen = [s for i, s in enumerate(sites) if s in sites[:i]]
        if seen:
            raise ValueError(f"duplicate sites: {sorted(set(seen))}")
        return sites

    @model_validator(mode="after")
    def _consistent(self) -> Federation:
        found = []
        if self.min_sites is not None and self.min_sites > len(self.sites):
            found.append(finding(f"min_sites={self.min_sites} exceeds the {len(self.sites)} configured sites",
                                 "min_sites", "sites"))
        if self.poll_interval_s >= self.job_timeout_s:
            found.append(finding(f"poll_interval_s ({self.poll_interval_s}) must be below job_timeout_s "
                                 f"({self.job_timeout_s}): the job would be checked only after its time is up",
                                 "poll_interval_s", "job_timeout_s"))
        if self.task_timeout_s > self.job_timeout_s:
            found.append(finding(f"task_timeout_s ({self.task_timeout_s}) exceeds job_timeout_s "
                                 f"({self.job_timeout_s}): the job would be aborted while still waiting for a site",
                                 "task_timeout_s", "job_timeout_s"))
        raise_findings(found)
        return self

    @property
    def required_sites(self) -> int:
        """Return how many sites must take part in every job."""
        return self.min_sites or len(self.sites)


class Privacy(Section):
    min_count: PositiveInt = 10
    min_noise_level: Annotated[float, Field(ge=0, lt=1)] = 0.1
    max_noise_level: Annotated[float, Field(ge=0, lt=1)] = 0.3
    max_bins_percent: Annotated[float, Field(gt=0, le=100)] = 10

    @model_validator(mode="after")
    def _noise_ordered(self) -> Privacy:
        if self.min_noise_level > self.max_noise_level:
            raise_findings([finding(
                f"min_noise_level {self.min_noise_level} exceeds max_noise_level {self.max_noise_level}",
                "min_noise_level", "max_noise_level")])
        return self


class Stats(Section):
    histogram_bins: Annotated[int, Field(ge=2, le=200)] = 10
    precision: Annotated[int, Field(ge=1, le=12)] = 6


class Training(Section):
    rounds: Annotated[int, Field(ge=1, le=1000)] = 10
    local_epochs: Annotated[int, Field(ge=1, le=1000)] = 5
    learning_rate: PositiveFloat = 0.01
    alpha: Annotated[float, Field(ge=0)] = 1e-4
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)] = 0

    @model_validator(mode="after")
    def _seeds_in_range(self) -> Training:
        if self.seed + self.rounds - 1 > MAX_SEED:  # round r trains with seed + r
            raise_findings([finding(f"seed + rounds - 1 must stay within {MAX_SEED} (round r seeds scikit-learn "
                                    f"with seed + r): lower the seed below {MAX_SEED - self.rounds + 2}",
                                    "seed", "rounds")])
        return self


class Shap(Section):
    explainer: Literal["kernel", "permutation"] = "kernel"
    background_size: Annotated[int, Field(ge=1, le=1000)] = 20
    samples: Annotated[int, Field(ge=10, le=100_000)] = 200
    #: the most rows a site explains (a seeded sample stratified by label); None: every row
    max_rows: Annotated[int, Field(ge=10)] | None = 2000


class MLflow(Section):
    experiment: Annotated[str, Field(min_length=1)] = "flareflow"
    registered_model: Identifier = "flareflow"
    #: a new version becomes champion when its validation AUC is at least the champion's minus this
    champion_tolerance: Annotated[float, Field(ge=0, lt=1)] = 0.01
    #: automatic: a version passing the champion rule takes the alias; approval: a person approves it first
    promotion: Literal["automatic", "approval"] = "automatic"
    #: how long a version awaits approval; unanswered by then, it stays a challenger
    approval_timeout_s: Seconds = 3 * 24 * 3600


class Warehouse(Section):
    conn_id: Identifier = "flareflow_warehouse"


class Schedule(Section):
    cron: str = "0 3 1 * *"
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, cron: str) -> str:
        fields = cron.split()
        if len(fields) != 5:
            preset = " (presets such as @monthly are not accepted)" if cron.strip().startswith("@") else ""
            raise ValueError(f"a cron has five fields, minute hour day-of-month month day-of-week, such as "
                             f"'0 3 1 * *'; this has {len(fields)}{preset}")
        if not croniter.is_valid(cron):
            raise ValueError("not a valid cron expression")
        try:
            croniter(cron, datetime(2000, 1, 1)).get_next(datetime)
        except CroniterBadDateError as err:
            raise ValueError("a cron that never fires (a day no month has, such as 30 February)") from err
        return cron

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, name: str) -> str:
        if name not in _timezones() or name == "localtime":
            raise ValueError("not an IANA timezone (such as UTC or Europe/Berlin)")
        return name


@functools.cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


class JobConfig(Section):
    """The merged configuration one NVFlare job runs with."""

    federation: Federation
    data: Data
    privacy: Privacy = Privacy()
    stats: Stats = Stats()
    training: Training = Training()
    shap: Shap = Shap()
    mlflow: MLflow = MLflow()
    warehouse: Warehouse = Warehouse()
    schedule: Schedule = Schedule()


class PipelineConfig(BaseModel):
    """The three job configs of one run and the fingerprint stamped on its outputs."""

    model_config = ConfigDict(frozen=True)

    jobs: dict[str, JobConfig]
    fingerprint: str

    def job(self, name: str) -> JobConfig:
        """Return the merged config of one job."""
        return self.jobs[name]

    def to_dict(self) -> dict[str, Any]:
        """Return the normalized form (JSON-safe), as fingerprinted."""
        return {name: cfg.model_dump(mode="json") for name, cfg in sorted(self.jobs.items())}
