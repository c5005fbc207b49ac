"""The configuration schema: every section of a job's merged config, checked strictly.

A cross-field check raises :func:`error_at` naming the keys involved, so the loader can blame the file
that set one of them (see ``flareflow.config.loader``).
"""

from __future__ import annotations

import zoneinfo
from typing import Annotated, Any, Literal

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from fl_tasks.columns import COLUMNS

JOBS: tuple[str, ...] = ("stats", "train", "shap")
SITE_NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"
#: Columns of the site data holding numbers: the only ones usable as numeric features or label.
NUMERIC_COLUMNS: tuple[str, ...] = ("id", "age", "trestbps", "chol", "thalch", "oldpeak", "ca", "num")

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Identifier = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]


def error_at(reason: str, *fields: str) -> PydanticCustomError:
    """Return a validation error about ``fields`` (dotted paths below the model checked), preferred first.

    The loader reports it at the first of them set by the topmost file setting any of them.
    """
    return PydanticCustomError("config", reason, {"fields": fields})


class _Section(BaseModel):
    # strict: no coercion (true is no 1, "10" is no 10); an int is still a valid float
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Federation(_Section):
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
            raise error_at(f"min_sites={self.min_sites} exceeds the {len(self.sites)} configured sites",
                            "min_sites", "sites")
        return self

    @property
    def required_sites(self) -> int:
        """Return how many sites must take part in every job."""
        return self.min_sites or len(self.sites)


class Features(_Section):
    numeric: list[str] = Field(default_factory=list)
    binary: dict[str, str] = Field(default_factory=dict)
    categorical: dict[str, list[str]] = Field(default_factory=dict)
    zero_means_missing: list[str] = Field(default_factory=list)

    @field_validator("numeric")
    @classmethod
    def _numeric_columns(cls, numeric: list[str]) -> list[str]:
        for column in numeric:
            if column not in NUMERIC_COLUMNS:
                what = "a column without numbers" if column in COLUMNS else "not in the site data"
                raise ValueError(f"numeric feature {column!r} is {what}; numeric columns: {list(NUMERIC_COLUMNS)}")
        return numeric

    @field_validator("binary", "categorical")
    @classmethod
    def _known_columns(cls, features: dict[str, Any]) -> dict[str, Any]:
        for column, spec in features.items():  # spec: a binary's value for 1, or a categorical's categories
            if column not in COLUMNS:
                raise error_at(f"feature {column!r} not in the site data; known columns: {list(COLUMNS)}", column)
            if spec == []:
                raise error_at(f"categorical feature {column!r} without categories", column)
            if isinstance(spec, list) and len(set(spec)) < len(spec):
                raise error_at(f"a category of {column!r} listed twice: {spec}", column)
        return features

    @model_validator(mode="after")
    def _consistent(self) -> Features:
        kinds = {"numeric": self.numeric, "binary": list(self.binary), "categorical": list(self.categorical)}
        used = [c for columns in kinds.values() for c in columns]
        if not used:
            raise error_at("no features configured", *kinds)
        repeated = sorted({c for c in used if used.count(c) > 1})
        if repeated:
            raise error_at(f"features listed twice: {repeated}",
                            *(kind for kind, columns in kinds.items() if set(columns) & set(repeated)))
        stray = sorted(set(self.zero_means_missing) - set(self.numeric))
        if stray:
            raise error_at(f"zero_means_missing names non-numeric features: {stray}",
                            "zero_means_missing", "numeric")
        return self


class Split(_Section):
    train: PositiveFloat = 0.6
    validation: PositiveFloat = 0.2
    test: PositiveFloat = 0.2

    @model_validator(mode="after")
    def _sums_to_one(self) -> Split:
        if abs(self.train + self.validation + self.test - 1.0) > 1e-9:
            raise error_at("train + validation + test must sum to 1", "train", "validation", "test")
        return self


class Data(_Section):
    file_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+\.csv$")] = "heart.csv"
    label: str = "num"
    label_positive_above: float = 0
    features: Features
    window_months: PositiveInt | None = None
    split: Split = Split()

    @field_validator("file_name")
    @classmethod
    def _inside_folder(cls, name: str) -> str:
        if name.startswith(".") or ".." in name:
            raise ValueError("must be a plain file name inside the site's data folder")
        return name

    @field_validator("label")
    @classmethod
    def _label_numeric(cls, label: str) -> str:
        if label not in COLUMNS:
            raise ValueError(f"label {label!r} is not a column of the site data")
        if label not in NUMERIC_COLUMNS:
            raise ValueError(f"label {label!r} is not a numeric column; those are {list(NUMERIC_COLUMNS)}")
        return label

    @model_validator(mode="after")
    def _label_not_a_feature(self) -> Data:
        for kind in ("numeric", "binary", "categorical"):
            if self.label in getattr(self.features, kind):
                raise error_at(f"the label {self.label!r} is also a {kind} feature", f"features.{kind}", "label")
        return self


class Privacy(_Section):
    min_count: PositiveInt = 10
    min_noise_level: Annotated[float, Field(ge=0, lt=1)] = 0.1
    max_noise_level: Annotated[float, Field(ge=0, lt=1)] = 0.3
    max_bins_percent: Annotated[float, Field(gt=0, le=100)] = 10

    @model_validator(mode="after")
    def _noise_ordered(self) -> Privacy:
        if self.min_noise_level > self.max_noise_level:
            raise error_at(f"min_noise_level {self.min_noise_level} exceeds max_noise_level {self.max_noise_level}",
                            "min_noise_level", "max_noise_level")
        return self


class Stats(_Section):
    histogram_bins: Annotated[int, Field(ge=2, le=200)] = 10
    precision: Annotated[int, Field(ge=1, le=12)] = 6


class Training(_Section):
    rounds: Annotated[int, Field(ge=1, le=1000)] = 10
    local_epochs: Annotated[int, Field(ge=1, le=1000)] = 5
    learning_rate: PositiveFloat = 0.01
    alpha: Annotated[float, Field(ge=0)] = 1e-4
    seed: int = 0


class Shap(_Section):
    explainer: Literal["kernel", "permutation"] = "kernel"
    background_size: Annotated[int, Field(ge=1, le=1000)] = 20
    samples: Annotated[int, Field(ge=10, le=100_000)] = 200
    max_rows: PositiveInt | None = None


class MLflow(_Section):
    experiment: Annotated[str, Field(min_length=1)] = "flareflow"
    registered_model: Identifier = "flareflow-heart-disease"
    #: a new version becomes champion when its validation AUC is at least the champion's minus this
    champion_tolerance: Annotated[float, Field(ge=0, lt=1)] = 0.01


class Warehouse(_Section):
    conn_id: Identifier = "flareflow_warehouse"


class Schedule(_Section):
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


class JobConfig(_Section):
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
