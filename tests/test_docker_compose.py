"""The container deployment (docker-compose.yml, Dockerfile, docker/) checked without a Docker engine.

Each rule is a ``*_problems`` function returning what is wrong; the tests assert the real files have
no problems, and feed deliberately broken copies to the same functions to show each rule can fail.
"""

from __future__ import annotations

import copy
import fnmatch
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / "docker" / ".env.example"
PROVISION_SCRIPT = ROOT / "docker" / "nvflare_provision.py"
INIT_SQL = ROOT / "docker" / "postgres" / "init-databases.sql"
APP_DIR = "/app"  # WORKDIR of the image: the project's files live there

SITES: list[str] = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())["federation"]["sites"]
AIRFLOW_SERVICES = ["airflow-init", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker", "flower"]
#: the services running tasks, by executor: they need the NVFlare admin kit
TASK_RUNNERS = ["airflow-scheduler", "airflow-triggerer", "airflow-worker"]
EXPECTED_SERVICES = {"postgres", "mlflow", "nvflare-provision", "nvflare-server", "redis", *AIRFLOW_SERVICES,
                     *(f"site-{site}" for site in SITES)}
DATABASES = {"flareflow_airflow", "flareflow_mlflow", "flareflow_warehouse"}
ADMIN_USER = "admin@nvidia.com"
KITS = "poc/example_project/prod_00"  # the POC kits' folder inside the nvflare-workspace volume

SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|FERNET|TOKEN|API_KEY|PRIVATE_KEY|CREDENTIAL|BASIC_AUTH",
                         re.IGNORECASE)
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}, ${VAR:+alt}; $${...} is escaped
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


# -- reading -------------------------------------------------------------------------------------
def load_compose(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def resolve(text: str, env: Mapping[str, str] | None = None) -> str:
    """Interpolate like compose: a given value, else the default, else the variable's name."""
    env = env or {}

    def value(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2) or "", match.group(3) or ""
        if env.get(name):
            return env[name]
        return arg if op in (":-", "-") else name

    return INTERPOLATION.sub(value, text).replace("$$", "$")


def env_of(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def depends_of(service: Mapping[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def required_depends_of(service: Mapping[str, Any]) -> set[str]:
    """Return the dependencies compose must start (``required: false`` ones are skipped when disabled)."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return set(deps)
    return {name for name, spec in deps.items() if (spec or {}).get("required", True) is not False}


def profiles_of(service: Mapping[str, Any]) -> set[str]:
    """Return a service's profiles (none: it always runs)."""
    return set(service.get("profiles") or [])


def strings(node: Any) -> Iterator[str]:
    """Yield every string value in a parsed YAML tree."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def mounts(service: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return a service's volumes in long syntax."""
    result = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            result.append(entry)
            continue
        source, _, rest = entry.partition(":")
        target = rest.split(":")[0] if rest else source
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        result.append({"type": kind, "source": source, "target": target})
    return result


def subpath(mount: Mapping[str, Any]) -> str | None:
    return (mount.get("volume") or {}).get("subpath")


def command_of(service: Mapping[str, Any]) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else [str(arg) for arg in command]


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """Return (INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    result = []
    for line in joined.splitlines():
        if line.strip():
            word, _, args = line.strip().partition(" ")
            result.append((word.upper(), " ".join(args.split())))
    return result


# -- rules ---------------------------------------------------------------------------------------
def dependency_problems(services: Mapping[str, Any]) -> list[str]:
    problems = []
    graph = {}
    for name, service in services.items():
        deps = depends_of(service)
        graph[name] = set(deps)
        for target, condition in deps.items():
            if target not in services:
                problems.append(f"{name} depends on unknown service {target}")
                continue
            if condition not in CONDITIONS:
                problems.append(f"{name}: unknown condition {condition!r} for {target}")
            healthcheck = services[target].get("healthcheck") or {}
            if condition == "service_healthy" and (not healthcheck.get("test") or healthcheck.get("disable")):
                problems.append(f"{name} waits for {target} to be healthy, but {target} has no healthcheck")
            if condition == "service_completed_successfully" and str(services[target].get("restart", "no")) != "no":
                problems.append(f"{name} waits for {target} to complete, but {target} restarts")
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as err:
        problems.append(f"dependency cycle: {' -> '.join(err.args[1])}")
    return problems


def secret_problems(compose: Mapping[str, Any]) -> list[str]:
    """Secrets only by interpolation from .env: no literal, no non-empty default, not in URLs."""
    problems = []
    for text in strings(compose):
        for match in INTERPOLATION.finditer(text):
            name, op, arg = match.groups()
            if SECRET_NAME.search(name) and op in (":-", "-") and arg:
                problems.append(f"${{{name}}} has a literal default")
    for service_name, service in compose.get("services", {}).items():
        for key, value in env_of(service).items():
            if SECRET_NAME.search(key):
                match = INTERPOLATION.fullmatch(value.strip())
                if not match:
                    problems.append(f"{service_name}: {key} is not a ${{...}} interpolation")
        for text in strings(service):
            masked = INTERPOLATION.sub("\x00", text)  # an interpolation, already vetted above
            for userinfo in re.findall(r"[a-z][a-z0-9+.-]*://([^/@\s]+)@", masked):
                _, _, password = userinfo.partition(":")
                if password and password != "\x00":
                    problems.append(f"{service_name}: literal password in URL {text!r}")
    return problems


def env_example_problems(compose: Mapping[str, Any], example: str) -> list[str]:
    """Every required or secret variable is documented in docker/.env.example, with no secret value."""
    documented = dict(re.findall(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", example, re.MULTILINE))
    problems = []
    for text in strings(compose):
        for name, op, _ in INTERPOLATION.findall(text):
            required = op in ("", ":?", "?")
            if (required or SECRET_NAME.search(name)) and name not in documented:
                problems.append(f"${{{name}}} is not documented in docker/.env.example")
    for name, value in documented.items():
        if SECRET_NAME.search(name) and value.strip():
            problems.append(f"docker/.env.example gives {name} a value")
    return problems


def port_problems(services: Mapping[str, Any]) -> list[str]:
    problems, seen = [], {}
    for name, service in services.items():
        for entry in service.get("ports") or []:
            if isinstance(entry, dict):
                host_ip, published = entry.get("host_ip", ""), resolve(str(entry.get("published", "")))
                protocol = entry.get("protocol", "tcp")
            else:
                spec, _, protocol = resolve(str(entry)).partition("/")
                parts = spec.split(":")
                host_ip = parts[0] if len(parts) == 3 else ""
                published = parts[-2] if len(parts) >= 2 else ""
            if not published:
                problems.append(f"{name}: port {entry!r} has no fixed host port")
                continue
            key = (published, protocol or "tcp")
            if key in seen:
                problems.append(f"host port {published} published by both {seen[key]} and {name}")
            seen[key] = name
            if host_ip not in ("127.0.0.1", "localhost"):
                problems.append(f"{name}: port {entry!r} is published beyond localhost")
    return problems


def path_problems(compose: Mapping[str, Any], root: Path) -> list[str]:
    """Build contexts, Dockerfiles and bind-mounted host paths exist in the repo; volumes are declared."""
    problems = []
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        build = service.get("build")
        if build is not None:
            context = root / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = context / ("Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile"))
            if not context.is_dir():
                problems.append(f"{name}: build context {context} does not exist")
            elif not dockerfile.is_file():
                problems.append(f"{name}: Dockerfile {dockerfile} does not exist")
        for mount in mounts(service):
            source = str(mount.get("source", ""))
            if mount.get("type") == "bind":
                host = (root / source).resolve()
                if not host.is_relative_to(root):
                    problems.append(f"{name}: bind mount {source} lies outside the repository")
                elif not host.exists():
                    problems.append(f"{name}: bind-mounted {source} does not exist")
            elif mount.get("type") == "volume" and source and source not in declared:
                problems.append(f"{name}: volume {source} is not declared")
    return problems


def network_problems(compose: Mapping[str, Any]) -> list[str]:
    declared = set(compose.get("networks") or {})
    problems = []
    for name, service in compose["services"].items():
        networks = service.get("networks") or []
        for network in networks if isinstance(networks, list) else list(networks):
            if network not in declared:
                problems.append(f"{name}: network {network} is not declared")
        if networks and service.get("network_mode"):
            problems.append(f"{name}: both networks and network_mode")
    return problems


def site_problems(services: Mapping[str, Any], sites: list[str]) -> list[str]:
    """One service per hospital, mounting its own kit and nothing else of the federation."""
    problems = []
    owners: dict[str, list[str]] = {site: [] for site in sites}
    for name, service in services.items():
        kit_mounts = [m for m in mounts(service) if m.get("source") == "nvflare-workspace"]
        if name.startswith("site-"):
            if len(kit_mounts) != 1 or len(mounts(service)) != 1:
                problems.append(f"{name} must mount exactly one volume: its own kit")
            for mount in kit_mounts:
                hospital = (subpath(mount) or "").removeprefix(f"{KITS}/")
                if hospital not in owners:
                    problems.append(f"{name} mounts {subpath(mount)!r}, not a configured site's kit")
                    continue
                owners[hospital].append(name)
                if name != f"site-{hospital}":
                    problems.append(f"{name} runs the kit of {hospital}")
                command = command_of(service)
                if not command or not any(arg.startswith(mount["target"].rstrip("/") + "/startup/")
                                          for arg in command):
                    problems.append(f"{name} does not run a start script of its own kit")
        else:
            for mount in kit_mounts:
                hospital = (subpath(mount) or "").removeprefix(f"{KITS}/")
                if hospital in owners:
                    problems.append(f"{name} mounts the kit (and data) of hospital {hospital}")
                if subpath(mount) is None and name != "nvflare-provision":
                    problems.append(f"{name} mounts the whole NVFlare workspace")
    for site, names in owners.items():
        if len(names) != 1:
            problems.append(f"site {site} has {len(names)} services: {names}")
    return problems


def airflow_problems(compose: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
    """Airflow services share the x-airflow-common environment, which wires Airflow to the stack."""
    problems = []
    common = (compose.get("x-airflow-common") or {}).get("environment")
    if not isinstance(common, dict):
        return ["x-airflow-common has no environment mapping"]
    services = compose["services"]
    env = env_of({"environment": common})
    for name in AIRFLOW_SERVICES:
        own = services.get(name, {}).get("environment")
        if own is common:  # the anchor itself
            continue
        merged = env_of({"environment": own})
        if any(merged.get(key) != value for key, value in env.items()):
            problems.append(f"{name} does not use the x-airflow-common environment")

    def url(key: str) -> Any:
        return urlsplit(resolve(env.get(key, "")))

    if resolve(env.get("AIRFLOW__CORE__EXECUTOR", "")) != "LocalExecutor":
        problems.append("AIRFLOW__CORE__EXECUTOR is not LocalExecutor")
    metadata = url("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    if not metadata.scheme.startswith("postgresql") or metadata.hostname != "postgres" \
            or metadata.path != "/flareflow_airflow":
        problems.append("Airflow's metadata database is not flareflow_airflow on the postgres service")
    if env.get("AIRFLOW__CORE__DAGS_FOLDER") != f"{APP_DIR}/dags":
        problems.append(f"AIRFLOW__CORE__DAGS_FOLDER is not {APP_DIR}/dags")
    if "AIRFLOW__CORE__PLUGINS_FOLDER" in env:
        problems.append("AIRFLOW__CORE__PLUGINS_FOLDER is set: the dashboard plugin comes with the provider")
    if url("AIRFLOW__CORE__EXECUTION_API_SERVER_URL").hostname != "airflow-api-server":
        problems.append("tasks do not reach the Execution API at airflow-api-server")
    if url("MLFLOW_TRACKING_URI").hostname != "mlflow":
        problems.append("MLFLOW_TRACKING_URI does not point at the mlflow service")
    for key in ("FLAREFLOW_CONFIG_DIR", "FLAREFLOW_WORK_DIR", "AIRFLOW__API_AUTH__JWT_SECRET"):
        if not env.get(key):
            problems.append(f"{key} is not set")

    nvflare_key = f"AIRFLOW_CONN_{config['federation']['conn_id'].upper()}"
    warehouse_key = f"AIRFLOW_CONN_{config['warehouse']['conn_id'].upper()}"
    try:
        nvflare = json.loads(env[nvflare_key])
    except (KeyError, ValueError):
        problems.append(f"{nvflare_key} is missing or not JSON")
    else:
        extra = nvflare.get("extra") or {}
        if nvflare.get("conn_type") != "nvflare" or extra.get("username") != ADMIN_USER:
            problems.append(f"{nvflare_key} is not an nvflare connection for {ADMIN_USER}")
        for name in TASK_RUNNERS:
            kit = [m for m in mounts(services.get(name, {})) if m.get("target") == extra.get("startup_kit")]
            if not kit or subpath(kit[0]) != f"{KITS}/{ADMIN_USER}":
                problems.append(f"{name} does not mount the admin kit at {extra.get('startup_kit')}")
    warehouse = urlsplit(resolve(env.get(warehouse_key, "")))
    if not warehouse.scheme.startswith("postgres") or warehouse.hostname != "postgres" \
            or warehouse.path != "/flareflow_warehouse":
        problems.append(f"{warehouse_key} is not flareflow_warehouse on the postgres service")
    return problems


def profile_problems(services: Mapping[str, Any]) -> list[str]:
    """Whenever a service runs, every dependency it requires runs too (profiles only ever add services)."""
    problems = []
    for name, service in services.items():
        own = profiles_of(service)
        for target in sorted(required_depends_of(service)):
            needed = profiles_of(services.get(target, {}))
            if needed and not (own and own <= needed):
                problems.append(f"{name} requires {target}, which does not run with "
                                f"{'every profile' if not own else sorted(own - needed)}; use `required: false`")
    return problems


def celery_problems(compose: Mapping[str, Any]) -> list[str]:
    """The CeleryExecutor as in Airflow's official compose file: Redis broker, workers, results in PostgreSQL."""
    problems = []
    services = compose["services"]
    env = env_of({"environment": (compose.get("x-airflow-common") or {}).get("environment")})
    executor = env.get("AIRFLOW__CORE__EXECUTOR", "")
    if resolve(executor, {"AIRFLOW_EXECUTOR": "CeleryExecutor"}) != "CeleryExecutor":
        problems.append("AIRFLOW_EXECUTOR=CeleryExecutor does not switch the executor")
    broker = urlsplit(resolve(env.get("AIRFLOW__CELERY__BROKER_URL", "")))
    redis = services.get(broker.hostname or "", {})
    if broker.scheme != "redis" or not redis or "redis" not in str(redis.get("image", "")):
        problems.append("the Celery broker is not a redis service")
    elif not (redis.get("healthcheck") or {}).get("test"):
        problems.append(f"{broker.hostname} has no healthcheck")
    backend = urlsplit(resolve(env.get("AIRFLOW__CELERY__RESULT_BACKEND", "")))
    if not backend.scheme.startswith("db+postgresql") or backend.hostname != "postgres" \
            or backend.path != "/flareflow_airflow":
        problems.append("Celery's result backend is not the metadata database (db+postgresql...)")
    worker = services.get("airflow-worker", {})
    if command_of(worker) != ["airflow", "celery", "worker"]:
        problems.append("airflow-worker does not run `airflow celery worker`")
    if "celery" not in profiles_of(worker) or "celery" not in profiles_of(redis):
        problems.append("the workers and the broker are not in the celery profile")
    if depends_of(worker).get(broker.hostname or "") != "service_healthy":
        problems.append("airflow-worker does not wait for a healthy broker")
    if depends_of(services.get("airflow-scheduler", {})).get(broker.hostname or "") != "service_healthy":
        problems.append("airflow-scheduler does not wait for the broker when it runs")
    flower = services.get("flower", {})
    if command_of(flower) != ["airflow", "celery", "flower"] or not profiles_of(flower):
        problems.append("flower is missing or not optional (a profile)")
    elif not env_of(flower).get("AIRFLOW__CELERY__FLOWER_BASIC_AUTH"):
        problems.append("flower has no basic auth")
    return problems


def dockerfile_problems(text: str, root: Path) -> list[str]:
    problems = []
    steps = dockerfile_instructions(text)
    if not steps or steps[0] != ("FROM", "python:3.11-slim"):
        problems.append("the image does not start FROM python:3.11-slim")
    runs = [args for word, args in steps if word == "RUN"]
    if not any(re.search(r"\bpip install\b.*\buv\b", run) for run in runs):
        problems.append("uv is not installed with pip")
    syncs = [part for run in runs for part in re.split(r"&&|;", run) if re.search(r"\buv sync\b", part)]
    if not syncs:
        problems.append("no `uv sync`")
    for sync in syncs:
        if "--frozen" not in sync.split() or "--no-dev" not in sync.split():
            problems.append(f"`{sync.strip()}` lacks --frozen or --no-dev")
    users = [args for word, args in steps if word == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append("the image runs as root")
    workdirs = [args for word, args in steps if word == "WORKDIR"]
    if workdirs[-1:] != [APP_DIR]:
        problems.append(f"WORKDIR is not {APP_DIR}")
    copied = {}
    for word, args in steps:
        if word in ("ENV", "ARG"):
            for name in re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", args):
                if SECRET_NAME.search(name):
                    problems.append(f"{word} {name}: secrets are not baked into the image")
        if word == "COPY":
            parts = [part for part in args.split() if not part.startswith("--")]
            for source in parts[:-1]:
                copied[source.rstrip("/")] = parts[-1]
                if not (root / source).exists():
                    problems.append(f"COPY {source}: no such file in the repository")
    for folder in ("dags", "flareflow", "hospital", "configs", "data"):
        if copied.get(folder, "").rstrip("/") not in (folder, f"{APP_DIR}/{folder}"):
            problems.append(f"{folder}/ is not copied to {APP_DIR}/{folder}")
    return problems


def dockerignore_problems(ignore: str, dockerfile: str) -> list[str]:
    patterns = [line.strip().rstrip("/") for line in ignore.splitlines()
                if line.strip() and not line.startswith(("#", "!"))]
    problems = [f".dockerignore does not exclude {needed}" for needed in (".env", ".venv", ".git", ".flareflow")
                if needed not in patterns]
    for word, args in dockerfile_instructions(dockerfile):
        if word == "COPY":
            for source in [part for part in args.split() if not part.startswith("--")][:-1]:
                if any(fnmatch.fnmatch(source.rstrip("/"), pattern) for pattern in patterns):
                    problems.append(f"COPY {source} is excluded by .dockerignore")
    return problems


# -- the real files ------------------------------------------------------------------------------
def test_expected_services_exist(services: dict[str, Any]) -> None:
    assert sorted(EXPECTED_SERVICES - set(services)) == []


def test_no_version_key(compose: dict[str, Any]) -> None:
    assert "version" not in compose


def test_depends_on_targets_exist_without_cycles(services: dict[str, Any]) -> None:
    assert dependency_problems(services) == []


def test_startup_order(services: dict[str, Any]) -> None:
    """The one-shots finish before what needs them; the databases are healthy before their users."""
    for name in AIRFLOW_SERVICES:
        deps = depends_of(services[name])
        assert deps.get("postgres") == "service_healthy", name
        if name != "airflow-init":
            assert deps.get("airflow-init") == "service_completed_successfully", name
    for name in ("nvflare-server", *(f"site-{site}" for site in SITES)):
        assert depends_of(services[name]).get("nvflare-provision") == "service_completed_successfully", name
    for site in SITES:
        assert depends_of(services[f"site-{site}"]).get("nvflare-server") == "service_healthy"
    assert depends_of(services["mlflow"]).get("postgres") == "service_healthy"
    scheduler = depends_of(services["airflow-scheduler"])
    assert scheduler.get("mlflow") == scheduler.get("nvflare-server") == "service_healthy"


def test_every_configured_hospital_has_exactly_one_site_service(services: dict[str, Any]) -> None:
    assert SITES, "configs/default.yaml lists no sites"
    assert site_problems(services, SITES) == []


def test_airflow_services_share_the_env_anchor(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    assert airflow_problems(compose, config) == []
    assert len(re.findall(r"<<: \*airflow-common\b", COMPOSE_FILE.read_text())) == len(AIRFLOW_SERVICES)


def test_celery_deployment(compose: dict[str, Any]) -> None:
    assert celery_problems(compose) == []
    assert profile_problems(compose["services"]) == []
    # the LocalExecutor stays the default: nothing runs in a profile but the Celery parts
    profiled = {name for name, service in compose["services"].items() if profiles_of(service)}
    assert profiled == {"redis", "airflow-worker", "flower"}


def test_no_literal_secrets(compose: dict[str, Any]) -> None:
    assert secret_problems(compose) == []


def test_env_example_documents_every_required_variable(compose: dict[str, Any]) -> None:
    assert env_example_problems(compose, ENV_EXAMPLE.read_text()) == []
    assert not (ROOT / ".env").exists() or ".env" not in subprocess.run(
        ["git", "ls-files", ".env"], cwd=ROOT, capture_output=True, text=True).stdout, ".env is committed"


def test_build_contexts_and_bind_mounts_exist(compose: dict[str, Any]) -> None:
    assert path_problems(compose, ROOT) == []


def test_files_the_commands_run_are_in_the_image(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for arg in command_of(service):
            if arg.startswith(f"{APP_DIR}/"):
                assert (ROOT / arg.removeprefix(f"{APP_DIR}/")).is_file(), f"{name}: {arg}"


def test_networks(compose: dict[str, Any]) -> None:
    assert network_problems(compose) == []
    services = compose["services"]
    assert compose["networks"]["federation"].get("internal") is True
    for site in SITES:
        assert services[f"site-{site}"]["networks"] == ["federation"], "a hospital reaches only the federation"
    assert "federation" in services["nvflare-server"]["networks"]


def test_dockerfile(compose: dict[str, Any]) -> None:
    assert dockerfile_problems(DOCKERFILE.read_text(), ROOT) == []
    assert dockerignore_problems(DOCKERIGNORE.read_text(), DOCKERFILE.read_text()) == []


def test_published_ports_are_unique_and_local(services: dict[str, Any]) -> None:
    assert port_problems(services) == []
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"airflow-api-server", "mlflow", "flower"}


def test_init_script_creates_the_databases_the_services_use(compose: dict[str, Any]) -> None:
    from flareflow.local import postgres

    created = set(re.findall(r"CREATE DATABASE\s+(\w+)", INIT_SQL.read_text(), re.IGNORECASE))
    assert created == DATABASES == set(postgres.DATABASES)
    used = {urlsplit(url).path.strip("/") for text in strings(compose["services"])
            for url in re.findall(r"postgres\S*://\S+", resolve(text))}
    assert used == DATABASES
    mounted = [m for m in mounts(compose["services"]["postgres"]) if m["type"] == "bind"]
    assert [m["target"] for m in mounted] == [f"/docker-entrypoint-initdb.d/10-{INIT_SQL.name}"]


def test_provisioning_matches_the_mounts(services: dict[str, Any]) -> None:
    """What nvflare-provision writes is where the server and sites look for it."""
    env = env_of(services["nvflare-provision"])
    (root,) = [m for m in mounts(services["nvflare-provision"]) if m["source"] == "nvflare-workspace"]
    workspace = Path(env["NVFLARE_POC_WORKSPACE"])
    assert f"{workspace.relative_to(root['target'])}/example_project/prod_00" == KITS
    assert env["NVFLARE_SERVER_HOST"] == "nvflare-server"
    assert "federation" in services["nvflare-server"]["networks"]
    (server_kit,) = mounts(services["nvflare-server"])
    assert subpath(server_kit) == f"{KITS}/server"
    assert env["NVFLARE_SERVER_KIT_MOUNT"] == server_kit["target"]
    assert Path(env["NVFLARE_SERVER_STATE_DIR"]).is_relative_to(server_kit["target"])
    assert command_of(services["nvflare-server"])[1] == f"{server_kit['target']}/startup/sub_start.sh"
    assert "8002" in " ".join(services["nvflare-server"]["healthcheck"]["test"])  # the POC port
    assert command_of(services["nvflare-provision"]) == ["python", f"{APP_DIR}/docker/{PROVISION_SCRIPT.name}"]
    assert services["nvflare-provision"].get("network_mode") == "none"


def _package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)  # no import: only where the package lives
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{package} is not installed")
    return Path(next(iter(spec.submodule_search_locations)), *parts)


def test_commands_exist_in_the_installed_tools(services: dict[str, Any]) -> None:
    """Airflow subcommands, mlflow server options and the kits' --once flag exist in the locked versions."""
    airflow_cli = _package_file("airflow", "cli", "cli_config.py").read_text()
    celery_cli = _package_file("airflow.providers.celery", "cli", "definition.py").read_text()
    for name in AIRFLOW_SERVICES:
        for word in command_of(services[name])[1:]:
            if not word.startswith("-") and not word.isdigit():
                cli = celery_cli if command_of(services[name])[1] == "celery" else airflow_cli
                assert f'name="{word}"' in cli, f"{name}: airflow has no command {word!r}"
    for name in ("airflow-dag-processor", "airflow-triggerer"):
        for option in re.findall(r"--[a-z-]+", " ".join(services[name]["healthcheck"]["test"])):
            assert f'"{option}"' in airflow_cli, f"{name}: airflow jobs check has no {option}"
    mlflow_cli = "".join(_package_file("mlflow", *path).read_text()
                         for path in (("cli", "__init__.py"), ("utils", "cli_args.py")))
    command = command_of(services["mlflow"])
    assert command[:2] == ["mlflow", "server"]
    for option in command[2:]:  # declared as "--name" or "--name/--no-name"
        name = option.split("=")[0]
        assert re.search(rf'"{re.escape(name)}["/]', mlflow_cli), f"mlflow server has no option {name}"
    template = _package_file("nvflare", "lighter", "templates", "master_template.yml").read_text()
    assert "--once)" in template, "the NVFlare kits' sub_start.sh lost its --once flag"


# -- the provisioning script ---------------------------------------------------------------------
def _provision_module() -> Any:
    spec = importlib.util.spec_from_file_location("nvflare_provision", PROVISION_SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_kits_are_pointed_at_the_server_container(tmp_path: Path) -> None:
    provision = _provision_module()
    client = tmp_path / "cleveland" / "startup" / "fed_client.json"
    admin = tmp_path / ADMIN_USER / "startup" / "fed_admin.json"
    remote = tmp_path / "hungary" / "startup" / "fed_client.json"
    for path, content in [
        (client, {"servers": [{"service": {"target": "localhost:8002", "scheme": "http"}}]}),
        (admin, {"admin": {"host": "localhost", "port": 8002}}),
        (remote, {"servers": [{"service": {"target": "fl.example.org:8002"}}]}),
    ]:
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(content))
    assert provision.point_kits_at(tmp_path, "nvflare-server") == [client, admin]
    assert json.loads(client.read_text())["servers"][0]["service"]["target"] == "nvflare-server:8002"
    assert json.loads(admin.read_text())["admin"] == {"host": "nvflare-server", "port": 8002}
    assert json.loads(remote.read_text())["servers"][0]["service"]["target"] == "fl.example.org:8002"
    assert provision.point_kits_at(tmp_path, "nvflare-server") == []  # idempotent


def test_server_storage_must_stay_inside_its_kit(tmp_path: Path) -> None:
    provision = _provision_module()
    with pytest.raises(ValueError):
        provision.relocate_server_storage(tmp_path, Path("/opt/nvflare/server"), Path("/opt/nvflare/poc/jobs"))


@pytest.mark.skipif(shutil.which("nvflare", path=str(Path(sys.executable).parent)) is None,
                    reason="the nvflare CLI is not installed")
def test_provisioning_builds_the_container_layout(tmp_path: Path, services: dict[str, Any]) -> None:
    """Run docker/nvflare_provision.py as the container would (twice: it is idempotent)."""
    env = {**os.environ, **env_of(services["nvflare-provision"]),
           "HOME": str(tmp_path / "home"),  # nvflare writes ~/.nvflare
           "NVFLARE_POC_WORKSPACE": str(tmp_path / "poc"), "FLAREFLOW_PROJECT_DIR": str(ROOT),
           "FLAREFLOW_CONFIG_DIR": str(ROOT / "configs"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for _ in range(2):
        result = subprocess.run([sys.executable, str(PROVISION_SCRIPT)], env=env, capture_output=True, text=True,
                                timeout=300, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    kits = tmp_path / "poc" / "example_project" / "prod_00"
    for site in SITES:
        fed_client = json.loads((kits / site / "startup" / "fed_client.json").read_text())
        assert fed_client["servers"][0]["service"]["target"] == "nvflare-server:8002"
        assert (kits / site / "local" / "flareflow" / "heart.csv").is_file()
        assert "--once)" in (kits / site / "startup" / "sub_start.sh").read_text()
    assert json.loads((kits / ADMIN_USER / "startup" / "fed_admin.json").read_text())["admin"]["host"] \
        == "nvflare-server"
    resources = json.loads((kits / "server" / "local" / "resources.json").read_text())
    job_manager = next(c for c in resources["components"] if c["id"] == "job_manager")
    assert job_manager["args"]["uri_root"] == f"{env['NVFLARE_SERVER_STATE_DIR']}/jobs-storage"
    assert (kits / "server" / "state" / "jobs-storage").is_dir()
    assert json.loads((kits / "server" / "startup" / "fed_server.json").read_text())["servers"][0]["service"][
        "target"].endswith(":8002")


# -- the rules can fail --------------------------------------------------------------------------
def _broken(compose: dict[str, Any], change: str) -> dict[str, Any]:
    broken = copy.deepcopy(compose)
    services = broken["services"]
    if change == "cycle":
        services["postgres"]["depends_on"] = {"airflow-scheduler": {"condition": "service_started"}}
    elif change == "unknown-target":
        services["mlflow"]["depends_on"]["memcached"] = {"condition": "service_healthy"}
    elif change == "healthy-without-healthcheck":
        services["site-hungary"]["healthcheck"] = {"disable": True}
        services["mlflow"]["depends_on"]["site-hungary"] = {"condition": "service_healthy"}
    elif change == "literal-password":
        services["postgres"]["environment"]["POSTGRES_PASSWORD"] = "hunter2"
    elif change == "password-default":
        services["postgres"]["environment"]["POSTGRES_PASSWORD"] = "${POSTGRES_PASSWORD:-hunter2}"
    elif change == "password-in-url":
        services["mlflow"]["environment"]["MLFLOW_BACKEND_STORE_URI"] = "postgresql://u:hunter2@postgres/x"
    elif change == "duplicate-port":
        services["mlflow"]["ports"] = ["127.0.0.1:8080:5000"]
    elif change == "public-port":
        services["mlflow"]["ports"] = ["5000:5000"]
    elif change == "missing-bind":
        services["postgres"]["volumes"].append("./docker/no-such-file.sql:/docker-entrypoint-initdb.d/x.sql")
    elif change == "missing-context":
        services["mlflow"]["build"] = {"context": "no-such-dir"}
    elif change == "missing-site":
        del services["site-switzerland"]
    elif change == "site-twice":
        services["site-extra"] = copy.deepcopy(services["site-hungary"])
    elif change == "airflow-sees-hospital":
        services["airflow-scheduler"]["volumes"] = [*services["airflow-scheduler"]["volumes"], {
            "type": "volume", "source": "nvflare-workspace", "target": "/x", "volume": {"subpath": f"{KITS}/hungary"}}]
    elif change == "env-diverges":
        services["airflow-triggerer"]["environment"] = {"AIRFLOW__CORE__EXECUTOR": "SequentialExecutor"}
    elif change == "sqlite-metadata":
        broken["x-airflow-common"]["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = "sqlite:////tmp/a.db"
    elif change == "no-warehouse-conn":
        del broken["x-airflow-common"]["environment"]["AIRFLOW_CONN_FLAREFLOW_WAREHOUSE"]
    elif change == "undeclared-network":
        services["mlflow"]["networks"] = ["frontend"]
    elif change == "scheduler-requires-redis":
        services["airflow-scheduler"]["depends_on"]["redis"] = {"condition": "service_healthy"}
    elif change == "flower-without-redis":
        services["redis"]["profiles"] = ["celery"]
    elif change == "executor-fixed":
        broken["x-airflow-common"]["environment"]["AIRFLOW__CORE__EXECUTOR"] = "LocalExecutor"
    elif change == "broker-elsewhere":
        broken["x-airflow-common"]["environment"]["AIRFLOW__CELERY__BROKER_URL"] = "redis://cache:6379/0"
    elif change == "results-in-redis":
        broken["x-airflow-common"]["environment"]["AIRFLOW__CELERY__RESULT_BACKEND"] = "redis://redis:6379/1"
    elif change == "worker-always-on":
        del services["airflow-worker"]["profiles"]
    elif change == "open-flower":
        del services["flower"]["environment"]["AIRFLOW__CELERY__FLOWER_BASIC_AUTH"]
    elif change == "worker-without-kit":
        services["airflow-worker"]["volumes"] = services["airflow-worker"]["volumes"][:2]
    return broken


@pytest.mark.parametrize(("change", "rule"), [
    ("cycle", "dependencies"), ("unknown-target", "dependencies"), ("healthy-without-healthcheck", "dependencies"),
    ("literal-password", "secrets"), ("password-default", "secrets"), ("password-in-url", "secrets"),
    ("duplicate-port", "ports"), ("public-port", "ports"), ("missing-bind", "paths"), ("missing-context", "paths"),
    ("missing-site", "sites"), ("site-twice", "sites"), ("airflow-sees-hospital", "sites"),
    ("env-diverges", "airflow"), ("sqlite-metadata", "airflow"), ("no-warehouse-conn", "airflow"),
    ("undeclared-network", "networks"), ("scheduler-requires-redis", "profiles"), ("flower-without-redis", "profiles"),
    ("executor-fixed", "celery"), ("broker-elsewhere", "celery"), ("results-in-redis", "celery"),
    ("worker-always-on", "celery"), ("open-flower", "celery"), ("worker-without-kit", "airflow"),
])
def test_rules_catch_broken_compose_files(compose: dict[str, Any], change: str, rule: str) -> None:
    broken = _broken(compose, change)
    config = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    check = {
        "dependencies": lambda: dependency_problems(broken["services"]),
        "secrets": lambda: secret_problems(broken),
        "ports": lambda: port_problems(broken["services"]),
        "paths": lambda: path_problems(broken, ROOT),
        "sites": lambda: site_problems(broken["services"], SITES),
        "airflow": lambda: airflow_problems(broken, config),
        "networks": lambda: network_problems(broken),
        "profiles": lambda: profile_problems(broken["services"]),
        "celery": lambda: celery_problems(broken),
    }[rule]
    assert check(), f"the {rule} rule missed: {change}"


@pytest.mark.parametrize(("old", "new"), [
    ("uv sync --frozen --no-dev --all-packages --all-extras\n", "uv sync --no-dev --all-packages --all-extras\n"),
    ("USER flareflow", "USER root"),
    ("COPY dags/ dags/\n", ""),
    ("FROM python:3.11-slim", "FROM python:3.13"),
    ('pip install --no-cache-dir "uv==${UV_VERSION}"', "curl -LsSf https://astral.sh/uv/install.sh | sh"),
    ("ARG APP_UID=50000", "ARG APP_UID=50000\nENV POSTGRES_PASSWORD=hunter2"),
])
def test_dockerfile_rules_catch_broken_dockerfiles(old: str, new: str) -> None:
    text = DOCKERFILE.read_text()
    assert old in text
    assert dockerfile_problems(text.replace(old, new, 1), ROOT)


def test_env_example_rule_catches_undocumented_secrets(compose: dict[str, Any]) -> None:
    example = ENV_EXAMPLE.read_text()
    assert env_example_problems(compose, example.replace("AIRFLOW_JWT_SECRET=", "#"))
    assert env_example_problems(compose, example.replace("POSTGRES_PASSWORD=", "POSTGRES_PASSWORD=hunter2"))


# -- docker compose itself, where available ------------------------------------------------------
def test_docker_compose_config_accepts_the_file() -> None:
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the docker compose CLI is not available")
    env = {**os.environ, "POSTGRES_PASSWORD": "x", "AIRFLOW_JWT_SECRET": "x", "AIRFLOW_API_SECRET_KEY": "x"}
    for profiles, extra in [([], {}), (["celery"], {"AIRFLOW_EXECUTOR": "CeleryExecutor"}),
                            (["celery", "flower"], {"AIRFLOW_EXECUTOR": "CeleryExecutor", "FLOWER_BASIC_AUTH": "u:p"}),
                            (["flower"], {})]:
        flags = [arg for profile in profiles for arg in ("--profile", profile)]
        result = subprocess.run([docker, "compose", "-f", str(COMPOSE_FILE), "--env-file", os.devnull, *flags,
                                 "config", "-q"], cwd=ROOT, env={**env, **extra}, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, f"profiles {profiles}: {result.stderr}"
