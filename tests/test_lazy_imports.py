"""A DAG step imports only what it needs: validating the configs pulls in no MLflow, scikit-learn, SHAP or dashboard.

Each step runs in its own task process (``flareflow.pipeline`` is imported when the task runs), so
whatever the validation step's module imports at its top is paid by that step: MLflow and
scikit-learn alone take several seconds to import.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
#: modules the validation step must never load
HEAVY = ("mlflow", "sklearn", "shap", "skops", "flareflow.dashboard", "flareflow.registry.mlflow_registry",
         "matplotlib", "plotly")

_PROBE = """
import json, sys
from pathlib import Path
from flareflow import pipeline
validated = pipeline.validate_config(Path(sys.argv[1]), {"rounds": 3})
heavy = sorted(name for name in sys.modules if name.split(".")[0] in HEAVY_ROOTS or name in HEAVY)
print(json.dumps({"rounds": validated["jobs"]["train"]["training"]["rounds"], "loaded": heavy}))
"""


def test_validating_the_configs_imports_no_mlflow_sklearn_shap_or_dashboard() -> None:
    roots = {name for name in HEAVY if "." not in name}
    probe = f"HEAVY = {HEAVY!r}\nHEAVY_ROOTS = {roots!r}\n{_PROBE}"
    result = subprocess.run([sys.executable, "-c", probe, str(PROJECT / "configs")], capture_output=True, text=True,
                            timeout=120, check=True, cwd=PROJECT)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["rounds"] == 3  # the step really ran, with the trigger's params
    assert report["loaded"] == []
