"""Bounded SHAP cost (issue 11, requirement 2): what one hospital pays with ``shap.max_rows``, and the error.

No federation: one large hospital file is made here by resampling the demo data (``--rows`` records),
and the hospital's own code path is timed on it as its client runs it: ``load_sample`` (read the file,
encode the label, draw the stratified sample, encode and standardize the sampled rows only), then the
explainer on the sample with the configured settings (KernelExplainer, ``samples``, a background of
``background_size`` rows), then ``site_estimate``. For comparison: loading every row
(``load_model_inputs``), and the cost of explaining every row, extrapolated from the measured cost per
row. Accuracy: on a population of ``--truth-rows`` records explained in full, how far the estimate from
the sample of them is from their mean |SHAP|, in standard errors (the sampling of rows alone: the
sample's values are taken from the full explanation, so the explainer's own noise does not enter).

    .venv/bin/python benchmarks/shap_cost.py [--rows 200000] [--max-rows 2000] [--truth-rows 6000]

The last line: ``rows=… max_rows=… load_sample_s=… load_all_s=… explain_s=… explain_all_est_s=…
per_row_ms=… max_rel_se=… max_se_vs_top=… max_abs_z=…``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project, when run as a script

from fl_tasks.contract import Contract
from fl_tasks.data import SITE_DATA_ENV, load_model_inputs, model_inputs
from fl_tasks.shap.estimate import site_estimate
from fl_tasks.shap.explain import abs_shap
from fl_tasks.shap.sample import load_sample, sample_rows, stratum_rows
from flareflow.config import load_pipeline_config

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo" / "heart_disease_uci_dated.csv"
UNTIL = "2026-11-01"


def _settings(folder: Path, rows: int, max_rows: int | None, seed: int) -> dict[str, Any]:
    """Write a ``rows``-record hospital file into ``folder``; return the SHAP client's settings for it."""
    config = load_pipeline_config(ROOT / "configs", {"shap": {"max_rows": max_rows}}).job("shap")
    settings = config.model_dump(mode="json")
    demo = pd.read_csv(DEMO, dtype=str, keep_default_na=False)
    frame = demo.sample(n=rows, replace=True, random_state=seed).reset_index(drop=True)
    frame["id"] = np.arange(rows).astype(str)
    frame.to_csv(folder / settings["data"]["file_name"], index=False)
    features, _ = model_inputs(demo, Contract.from_config(settings["data"]))
    return {"data": settings["data"], "until": UNTIL, "shap": settings["shap"], "seed": seed,
            "means": features.mean().to_dict(), "stddevs": features.std().fillna(1.0).to_dict()}


def _timed(call: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    value = call()
    return value, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="the hospital's records")
    parser.add_argument("--max-rows", type=int, default=2000, help="shap.max_rows")
    parser.add_argument("--truth-rows", type=int, default=6000, help="population explained in full (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        settings = _settings(folder, args.rows, args.max_rows, args.seed)
        os.environ[SITE_DATA_ENV] = str(folder)
        sample, load_sample_s = _timed(lambda: load_sample(folder, settings))
        (x_all, labels_all), load_all_s = _timed(lambda: load_model_inputs(folder, settings))
    options = settings["shap"]
    rng = np.random.default_rng(args.seed)
    background = x_all[rng.choice(len(x_all), size=options["background_size"], replace=False)]
    model = {"coef": rng.normal(scale=0.5, size=x_all.shape[1]).tolist(), "intercept": [0.1]}

    def explain(rows: np.ndarray) -> np.ndarray:
        return abs_shap(model, background, rows, explainer=options["explainer"], samples=options["samples"],
                        seed=args.seed)

    values, explain_s = _timed(lambda: explain(sample.x))
    estimate = site_estimate(values, sample.labels, sample.strata)
    per_row_s = explain_s / len(sample.x)
    rel_se = float((estimate.se / estimate.mean).max())
    top_se = float(estimate.se.max() / estimate.mean.max())  # against the chart's scale
    print(f"hospital rows {sample.rows}, explained {len(sample.x)} (label strata {sample.strata})")
    print(f"load_sample {load_sample_s:.2f}s vs load every row {load_all_s:.2f}s")
    print(f"explain the sample {explain_s:.1f}s ({1000 * per_row_s:.2f} ms/row); every row would take "
          f"~{per_row_s * sample.rows:.0f}s")
    print(f"largest standard error: {rel_se:.2%} of its feature's importance, {top_se:.2%} of the top importance")

    max_abs_z = float("nan")
    if args.truth_rows:  # a smaller population explained in full: the sample's error against the exact mean
        chosen = np.sort(rng.choice(len(x_all), size=min(args.truth_rows, len(x_all)), replace=False))
        x_pop, y_pop = x_all[chosen], labels_all[chosen]
        exact = explain(x_pop)
        drawn = sample_rows(y_pop, args.max_rows, args.seed)
        truth_estimate = site_estimate(exact[drawn], y_pop[drawn], stratum_rows(y_pop))
        z = (truth_estimate.mean - exact.mean(axis=0)) / truth_estimate.se
        max_abs_z = float(np.abs(z).max())
        print(f"population {len(x_pop)}: sample of {len(drawn)} within {max_abs_z:.2f} SE of the exact mean |SHAP| "
              f"(per feature z: {np.round(z, 2).tolist()})")
    print(f"rows={sample.rows} max_rows={args.max_rows} load_sample_s={load_sample_s:.2f} "
          f"load_all_s={load_all_s:.2f} explain_s={explain_s:.1f} explain_all_est_s={per_row_s * sample.rows:.0f} "
          f"per_row_ms={1000 * per_row_s:.2f} max_rel_se={rel_se:.4f} max_se_vs_top={top_se:.4f} "
          f"max_abs_z={max_abs_z:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
