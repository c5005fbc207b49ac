"""The configuration schema: every section of a job's merged config, checked strictly.

The ``data`` section, the data contract, lives in ``flareflow.config.contract``. A check across keys
reports findings naming the keys involved (``flareflow.config.base``), so the loader can blame the file
that set one of them (see ``flareflow.config.loader``).
"""

from __future__ import annotations

import zoneinfo
from typing import Annotated, Any, Literal

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flareflow.config.base import Section, finding, raise_findings
from flareflow.config.contract import Data

JOBS: tuple[str, ...] = ("stats", "train", "shap")
SITE_NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Identifier = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]


class Federation(Section):
    sites: list[Annotated[str, Field(pattern=SITE_NAME)]] = Field(min_length=1)
    min_sites: PositiveInt | None = None
    conn_id: Identifier = "nvflare_default"
    gate_timeout_s: PositiveFloat = 120
    task_timeout_s: PositiveFloat = 600
    job_timeout_s: PositiveFloat = 3600
    poll_interval_s: PositiveFloat = 5

    @field_validator("sites")
    @classmethod
    def _unique(cls, sites: list[str]) -> list[str]:
        seen = [s for i, s in enumerate(sites) if s in sites[:i]]
        if seen:
            raise ValueError(f"duplicate sites: {sorted(set(seen))}")
        return sites

    @model_validator(mode="after")
    def _min_sites_fit(self) -> Federation:
        if self.min_sites is not None and self.min_sites > len(self.sites):
            raise_findings([finding(f"min_sites={self.min_sites} exceeds the {len(self.sites)} configured sites",
                                    "min_sites", "sites")])
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
    seed: int = 0


class Shap(Section):
    explainer: Literal["kernel", "permutation"] = "kernel"
    background_size: Annotated[int, Field(ge=1, le=1000)] = 20
    samples: Annotated[int, Field(ge=10, le=100_000)] = 200
    max_rows: PositiveInt | None = None


class MLflow(Section):
    experiment: Annotated[str, Field(min_length=1)] = "flareflow"
    registered_model: Identifier = "flareflow"
    #: a new version becomes champion when its validation AUC is at least the champion's minus this
    champion_tolerance: Annotated[float, Field(ge=0, lt=1)] = 0.01


class Warehouse(Section):
    conn_id: Identifier = "flareflow_warehouse"


class Schedule(Section):
    cron: str = "0 3 1 * *"
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, cron: str) -> str:
        if not croniter.is_valid(cron):
            raise ValueError(f"not a valid cron expression: {cron!r}")
        return cron

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, name: str) -> str:
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as err:
            raise ValueError(f"not an IANA timezone (such as UTC or Europe/Berlin): {name!r}") from err
        return name


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
