"""End to end: what the two real runs of October 2026 left in the stack's MLflow, checked in full.

Per DAG run: one parent run (tags: fingerprint, Airflow run id, calendar version; the merged train config
as params; the sample-weighted global metrics), one child run per hospital (per-round validation loss,
accuracy and AUC, final test metrics), the model logged with a signature and an input example, its
registered version linked to the parent run, and a promotion decision behind the ``champion`` alias.
Expected values come from the training results the runs downloaded and from the warehouse.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import Run
from pipeline_runs import HOSPITALS, MODEL, training_result, xcom
from postgres_helpers import query

from fl_tasks.data import FeatureSpec
from flareflow.config import JobConfig, load_pipeline_config
from flareflow.local.stack import Stack
from flareflow.paths import config_dir
from flareflow.registry import decide

METRICS = ("loss", "accuracy", "auc")


def _flatten(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return {k: v for key, inner in value.items() for k, v in _flatten(f"{prefix}{key}.", inner).items()}
    return {prefix.rstrip("."): value}


def _weighted(values: Mapping[str, float], weights: Mapping[str, int]) -> float:
    return sum(values[s] * weights[s] for s in values) / sum(weights[s] for s in values)


@pytest.fixture(scope="module")
def both_runs(runs: list[str], second_run: str) -> list[str]:
    return [runs[0], second_run]


@pytest.fixture(scope="module")
def client() -> MlflowClient:
    return MlflowClient()


def train_config() -> JobConfig:
    """Return the merged ``train`` config the runs used (the stack's config folder, no overrides)."""
    return load_pipeline_config(config_dir()).job("train")


def _mlflow_runs(client: MlflowClient, run_id: str) -> tuple[Run, list[Run]]:
    """Return the parent run and the other runs tagged with an Airflow run's id."""
    experiment = client.get_experiment_by_name(train_config().mlflow.experiment)
    assert experiment is not None
    tagged = client.search_runs([experiment.experiment_id], filter_string=f"tags.airflow_run_id = '{run_id}'")
    parents = [r for r in tagged if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1, f"{run_id}: {len(parents)} top-level runs"
    return parents[0], [r for r in tagged if r is not parents[0]]


def model_features(stack: Stack, run_id: str) -> list[str]:
    """Return the encoded features in the order a run's model uses them.

    Every step takes it from the validated config in XCom, whose mappings Airflow's JSON column may
    reorder (PostgreSQL's jsonb orders keys by length): the same order everywhere, not the YAML's.
    """
    return FeatureSpec.from_dict(xcom(stack, run_id, "validate_config")["jobs"]["train"]["data"]["features"]).columns


def _version(stack: Stack, run_id: str) -> tuple[str, str]:
    (row,) = query(stack, "SELECT calendar_version, mlflow_version FROM model_versions WHERE run_id = %s", run_id)
    return row


@pytest.mark.parametrize("which", [0, 1], ids=["first", "second"])
def test_one_parent_run_per_dag_run_with_tags_and_config_params(
    stack: Stack, client: MlflowClient, both_runs: list[str], which: int,
) -> None:
    run_id = both_runs[which]
    parent, _ = _mlflow_runs(client, run_id)
    ((fingerprint,),) = query(stack, "SELECT config_fingerprint FROM runs WHERE run_id = %s", run_id)
    calendar, _ = _version(stack, run_id)
    tags = parent.data.tags
    assert (tags["airflow_run_id"], tags["config_fingerprint"], tags["calendar_version"]) == (
        run_id, fingerprint, calendar)
    assert parent.info.status == "FINISHED"
    expected = {key: str(value)[:500] for key, value in _flatten("", train_config().model_dump(mode="json")).items()}
    assert parent.data.params == expected
    assert parent.data.params["mlflow.champion_tolerance"] == "0.01"


@pytest.mark.parametrize("which", [0, 1], ids=["first", "second"])
def test_a_child_run_per_site_with_validation_history_and_test_metrics(
    client: MlflowClient, both_runs: list[str], which: int,
) -> None:
    run_id = both_runs[which]
    parent, children = _mlflow_runs(client, run_id)
    result = training_result(run_id)
    assert len(children) == len(HOSPITALS)
    assert {child.data.tags.get("site") for child in children} == HOSPITALS
    rounds = [entry["round"] for entry in result["rounds"]]
    assert rounds == list(range(result["final_round"] + 1))
    for child in children:
        site = child.data.tags["site"]
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.run_name.startswith(f"{site}-")
        for metric in METRICS:
            history = client.get_metric_history(child.info.run_id, f"validation_{metric}")
            assert sorted(point.step for point in history) == rounds, (site, metric)  # one point per round
            logged = {point.step: point.value for point in history}
            for entry in result["rounds"]:
                assert logged[entry["round"]] == pytest.approx(entry["metrics"][site][metric]), (site, metric)
            assert child.data.metrics[f"test_{metric}"] == pytest.approx(result["test"][site][metric])


@pytest.mark.parametrize("which", [0, 1], ids=["first", "second"])
def test_parent_metrics_are_the_sample_weighted_means_of_the_sites(
    client: MlflowClient, both_runs: list[str], which: int,
) -> None:
    run_id = both_runs[which]
    parent, children = _mlflow_runs(client, run_id)
    result = training_result(run_id)
    samples = result["samples"]
    assert set(samples["validation"]) == set(samples["test"]) == HOSPITALS
    for metric in METRICS:
        per_site = {child.data.tags["site"]: {p.step: p.value for p in
                                               client.get_metric_history(child.info.run_id, f"validation_{metric}")}
                    for child in children}
        parent_history = {p.step: p.value for p in
                          client.get_metric_history(parent.info.run_id, f"validation_{metric}")}
        assert sorted(parent_history) == [entry["round"] for entry in result["rounds"]]
        for step, value in parent_history.items():
            expected = _weighted({site: history[step] for site, history in per_site.items()}, samples["validation"])
            assert value == pytest.approx(expected), (metric, step)
        tested = {child.data.tags["site"]: child.data.metrics[f"test_{metric}"] for child in children}
        assert parent.data.metrics[f"test_{metric}"] == pytest.approx(_weighted(tested, samples["test"]))


@pytest.mark.parametrize("which", [0, 1], ids=["first", "second"])
def test_model_logged_with_signature_and_example_and_its_version_linked_to_the_run(
    stack: Stack, client: MlflowClient, both_runs: list[str], which: int,
) -> None:
    run_id = both_runs[which]
    parent, _ = _mlflow_runs(client, run_id)
    calendar, mlflow_version = _version(stack, run_id)
    version = client.get_model_version(MODEL, mlflow_version)
    assert version.run_id == parent.info.run_id
    assert version.tags["calendar_version"] == calendar
    (logged,) = client.search_logged_models([parent.info.experiment_id],
                                            filter_string=f"source_run_id = '{parent.info.run_id}'")
    assert logged.name == "model"
    # the version's source is the logged model; MLflow's SQL registry keeps no model_id on the version
    # (ModelVersion.model_id stays None) but tags the logged model with the versions made from it
    assert version.source == f"models:/{logged.model_id}"
    assert version.model_id in (None, logged.model_id)
    made = {(mv["name"], str(mv["version"])) for mv in json.loads(logged.tags["mlflow.modelVersions"])}
    assert (MODEL, mlflow_version) in made
    info = mlflow.models.get_model_info(f"models:/{logged.model_id}")
    features = model_features(stack, run_id)
    assert sorted(features) == sorted(FeatureSpec.from_dict(train_config().model_dump(mode="json")["data"]["features"])
                                      .columns)
    assert info.signature is not None
    assert info.signature.inputs.input_names() == features
    assert info.signature.outputs is not None
    assert info.saved_input_example_info is not None
    returned = xcom(stack, run_id, "register_model")
    assert (returned["calendar_version"], returned["mlflow_version"], returned["mlflow_run_id"]) == (
        calendar, mlflow_version, parent.info.run_id)


def test_champion_alias_and_the_promotion_decisions(
    stack: Stack, client: MlflowClient, both_runs: list[str],
) -> None:
    tolerance = train_config().mlflow.champion_tolerance
    decisions = []
    for run_id in both_runs:
        calendar, mlflow_version = _version(stack, run_id)
        tags = client.get_model_version(MODEL, mlflow_version).tags
        final = training_result(run_id)["rounds"][-1]["metrics"]["global"]["auc"]
        assert float(tags["validation_auc"]) == pytest.approx(final)
        parent, _ = _mlflow_runs(client, run_id)
        assert parent.data.metrics["validation_auc"] == pytest.approx(final)  # the last round's point
        ((role, reason, auc, previous),) = query(
            stack, "SELECT role, promotion_reason, validation_auc, previous_champion FROM model_versions"
                   " WHERE run_id = %s", run_id)
        assert (tags["promotion"], tags["promotion_reason"], tags["previous_champion"] or None) == (
            role, reason, previous)
        assert auc == pytest.approx(final)
        returned = xcom(stack, run_id, "register_model")
        assert (returned["role"], returned["promotion_reason"]) == (role, reason)
        decisions.append((calendar, mlflow_version, role, reason, final, previous))
    (first, second) = decisions
    others = query(stack, "SELECT count(*) FROM model_versions WHERE run_id <> ALL(%s)", list(both_runs))
    if others == [(0,)]:  # the e2e runs alone on this stack: the first version had no champion to beat
        assert first[2:4] == ("champion", "first version: no champion yet")
    if first[2] == "champion":
        assert second[5] == first[0]
        assert second[2:4] == decide(second[4], (first[0], first[4]), tolerance)
    aliases = client.get_registered_model(MODEL).aliases
    holder = second if second[2] == "champion" else first
    assert aliases.get("champion") == holder[1]
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")  # the alias resolves to a loadable model
    example = model.input_example
    assert list(example.columns) == model_features(stack, both_runs[0])
    assert model.predict(example).shape == (1,)
