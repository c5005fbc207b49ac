"""The research centre's side of federated training: FedAvg over every site, then a final test."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nvflare.app_common.abstract.fl_model import FLModel

from fl_tasks.controllers import AllSitesController, weighted_mean
from fl_tasks.train.model import fedavg

#: the global model and the metrics history, relative to the job's run folder
RESULT_FILE = "flareflow/training_result.json"


def _global_metrics(per_site: Mapping[str, Mapping[str, float]], weights: Mapping[str, int]) -> dict[str, float]:
    """Average each metric over the sites that report it, weighted by their sample counts."""
    names = sorted({name for metrics in per_site.values() for name in metrics})
    return {
        name: weighted_mean([per_site[s][name] for s in per_site if name in per_site[s]],
                            [weights[s] for s in per_site if name in per_site[s]])
        for name in names
    }


class FedAvgTraining(AllSitesController):
    """Run ``num_rounds`` of FedAvg, weighting each site by its training samples.

    Round ``r`` records each site's validation metrics of the global model after ``r`` rounds; the
    final evaluation adds the test metrics of the final global model.

    :param num_rounds: the number of FedAvg rounds
    :param initial_model: the starting weights (``coef``, ``intercept``)
    """

    def __init__(
        self, *, sites: Sequence[str], task_timeout_s: float, num_rounds: int,
        initial_model: Mapping[str, Sequence[float]], result_file: str = RESULT_FILE,
    ) -> None:
        super().__init__(sites=sites, task_timeout_s=task_timeout_s, result_file=result_file)
        self.num_rounds = num_rounds
        self.initial_model = dict(initial_model)

    def run(self) -> None:
        params: dict[str, Any] = dict(self.initial_model)
        history, n_train = [], {}
        for round_ in range(self.num_rounds):
            self.info(f"round {round_ + 1}/{self.num_rounds}")
            model = FLModel(params=params, current_round=round_, total_rounds=self.num_rounds)
            results = self.ask_all("train", model)
            n_train = {site: int(r.meta["n_train"]) for site, r in results.items()}
            validation = {site: r.metrics or {} for site, r in results.items()}
            n_val = {site: int(r.meta["n_validation"]) for site, r in results.items()}
            history.append({"round": round_, "metrics": {**validation, "global": _global_metrics(validation, n_val)}})
            params = fedavg([results[s].params for s in self.sites], [n_train[s] for s in self.sites])

        final = FLModel(params=params, current_round=self.num_rounds, total_rounds=self.num_rounds)
        results = self.ask_all("validate", final)
        validation = {site: r.metrics["validation"] for site, r in results.items()}
        n_val = {site: int(r.meta["n_validation"]) for site, r in results.items()}
        tested = {site: r.metrics["test"] for site, r in results.items()}
        n_test = {site: int(r.meta["n_test"]) for site, r in results.items()}
        history.append({"round": self.num_rounds,
                        "metrics": {**validation, "global": _global_metrics(validation, n_val)}})
        self.write_result({
            "sites": self.sites,
            "model": params,
            "rounds": history,
            "final_round": self.num_rounds,
            "test": {**tested, "global": _global_metrics(tested, n_test)},
            "samples": {"train": n_train, "validation": n_val, "test": n_test},
        })
