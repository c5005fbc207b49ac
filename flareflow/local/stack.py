"""The embedded local stack: PostgreSQL, MLflow, an NVFlare POC federation and Airflow's settings.

All state lives under one folder (``FLAREFLOW_HOME``, by default ``.flareflow/`` in the project):
``up`` is idempotent, ``down`` stops exactly what ``up`` started, ``status`` says what runs.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from flareflow.config import load_pipeline_config
from flareflow.hooks.nvflare import open_session, wait_for_sites
from flareflow.local import postgres
from flareflow.local.poc import ADMIN_USER, DEFAULT_PORT, NVFlarePOC
from flareflow.local.processes import Service, free_port
from flareflow.local.sites import DataSource, SiteDataError, split_by_site, write_site_data
from flareflow.local.workers import Broker, Worker, celery_env, find_broker, workers
from flareflow.paths import CONFIG_DIR_ENV, WORK_DIR_ENV

log = logging.getLogger(__name__)

HOME_ENV = "FLAREFLOW_HOME"
NVFLARE_PORT_ENV = "FLAREFLOW_NVFLARE_PORT"  # read when the stack is first created
PROJECT_ENV = "FLAREFLOW_PROJECT_DIR"
#: the demo dataset's folder in the project (its source.yaml names the file and its columns)
DEMO_DATA = Path("data") / "demo"
#: Airflow's long-running services, started by ``up --airflow`` for the UI
AIRFLOW_SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")
EXECUTORS = ("local", "celery")
#: task processes per Celery worker (the scheduler's parallelism, 4, still caps them all together)
WORKER_CONCURRENCY = 4


def project_dir() -> Path:
    """Return the project folder (holding ``dags/``, ``configs/``, ``data/``)."""
    if os.environ.get(PROJECT_ENV):
        return Path(os.environ[PROJECT_ENV]).resolve()
    candidate = Path(__file__).resolve().parents[2]
    return candidate if (candidate / "dags").is_dir() else Path.cwd().resolve()


def demo_source(project: Path | None = None) -> DataSource:
    """Return the demo dataset, as ``flareflow demo`` loads it.

    :param project: the project folder (default: :func:`project_dir`)
    """
    return DataSource.from_folder((project or project_dir()) / DEMO_DATA)


@dataclass
class Stack:
    """The local stack rooted at ``home``.

    :param home: the stack's state folder
    :param project: the project folder (``dags/``)
    :param configs: the config folder; default: ``FLAREFLOW_CONFIG_DIR``, else the one the stack was
        brought up with, else the project's ``configs/``
    """

    home: Path
    project: Path = field(default_factory=project_dir)
    configs: Path | None = None

    @classmethod
    def from_env(cls) -> Stack:
        """Return the stack of ``FLAREFLOW_HOME`` (default: ``.flareflow/`` in the project)."""
        project = project_dir()
        home = Path(os.environ.get(HOME_ENV) or project / ".flareflow").resolve()
        return cls(home=home, project=project)

    # -- layout -----------------------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def state_file(self) -> Path:
        return self.home / "stack.json"

    @property
    def config_dir(self) -> Path:
        remembered = self._state().get("config_dir")
        chosen = self.configs or os.environ.get(CONFIG_DIR_ENV) or remembered or self.project / "configs"
        return Path(str(chosen)).resolve()

    def data_source(self) -> DataSource | None:
        """Return the data source the stack was last brought up with (None before the first ``up``)."""
        remembered = self._state().get("data_source")
        return DataSource.from_state(remembered) if isinstance(remembered, dict) else None

    def _state(self) -> dict[str, object]:
        return json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def _save_state(self, **values: object) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps({**self._state(), **values}, indent=2))

    def sites(self) -> list[str]:
        """Return the configured hospital sites."""
        return load_pipeline_config(self.config_dir).job("stats").federation.sites

    def poc(self, sites: list[str] | None = None) -> NVFlarePOC:
        """Return the NVFlare POC of ``sites``, else of the sites it was prepared for, else of the config's.

        :param sites: the sites, one NVFlare client each
        """
        state = self._state()
        port = int(state.get("nvflare_port", DEFAULT_PORT))  # type: ignore[arg-type]
        chosen = sites or state.get("sites") or self.sites()
        return NVFlarePOC(self.home / "poc", list(chosen), self.base_env(), port=port)  # type: ignore[arg-type]

    def embedded_postgres(self) -> postgres.EmbeddedPostgres:
        return postgres.EmbeddedPostgres(self.home / "postgres")

    def database(self) -> postgres.PostgresServer:
        """Return the PostgreSQL server the stack uses (configured or embedded)."""
        configured = postgres.configured_server()
        if configured:
            return configured
        pg = self.embedded_postgres()
        return postgres.PostgresServer(f"postgresql://postgres@127.0.0.1:{pg.port}", managed=True)

    def mlflow_service(self) -> Service:
        port = int(self._state().get("mlflow_port", 0))  # type: ignore[arg-type]
        db = self.database().url("flareflow_mlflow")
        argv = [
            str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1",
            "--port", str(port), "--backend-store-uri", db, "--serve-artifacts",
            "--artifacts-destination", str(self.home / "mlflow" / "artifacts"), "--workers", "1",
        ]
        return Service("mlflow", argv, self.run_dir)

    @property
    def executor(self) -> str:
        """Return the executor of the last ``up`` (``local`` or ``celery``)."""
        return str(self._state().get("executor", "local"))

    def celery_workers(self) -> list[Worker]:
        """Return the Celery workers ``up --executor celery`` starts (none with the LocalExecutor)."""
        if self.executor != "celery":
            return []
        return workers(self.run_dir, int(self._state().get("workers", 1)), WORKER_CONCURRENCY)  # type: ignore[arg-type]

    def broker(self) -> Broker | None:
        """Return the Redis broker recorded by ``up --executor celery``, if any."""
        state = self._state()
        if not state.get("broker_url"):
            return None
        private = Service("redis", [], self.home / "redis") if state.get("broker_private") else None
        return Broker(str(state["broker_url"]), str(state.get("broker_claim", "")), private)

    def airflow_services(self) -> list[Service]:
        """Return Airflow's services: api-server, scheduler, dag-processor, triggerer, Celery workers."""
        return [*self._core_services(), *(worker.service() for worker in self.celery_workers())]

    def _core_services(self) -> list[Service]:
        airflow = str(Path(sys.executable).with_name("airflow"))
        port = str(self._state().get("airflow_port", 8080))
        argv = {"api-server": [airflow, "api-server", "--port", port]}
        return [Service(f"airflow-{name}", argv.get(name, [airflow, name]), self.run_dir)
                for name in AIRFLOW_SERVICES]

    # -- environment ------------------------------------------------------------------------------
    def base_env(self) -> dict[str, str]:
        """Return this process's environment with the project's interpreter first on PATH."""
        env = dict(os.environ)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env[HOME_ENV] = str(self.home)
        env[PROJECT_ENV] = str(self.project)
        return env

    def service_env(self) -> dict[str, str]:
        """Return the variables every pipeline process needs (Airflow, MLflow, connections)."""
        state = self._state()
        db = self.database()
        airflow_home = self.home / "airflow"
        nvflare_conn = {
            "conn_type": "nvflare",
            "extra": {"startup_kit": str(self.poc().admin_kit), "username": ADMIN_USER},
        }
        return {
            CONFIG_DIR_ENV: str(self.config_dir),
            WORK_DIR_ENV: str(self.home / "work"),
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{state.get('mlflow_port')}",
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.project / "dags"),
            # the dashboard plugin comes with the provider (its entry point): no plugins folder
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(airflow_home / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db.url("flareflow_airflow").replace(
                "postgresql://", "postgresql+psycopg2://", 1),
            "AIRFLOW__API_AUTH__JWT_SECRET": str(state.get("jwt_secret", "")),
            "AIRFLOW__API__SECRET_KEY": str(state.get("api_secret_key") or state.get("jwt_secret", "")),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(airflow_home / "logs"),
            "AIRFLOW_CONN_NVFLARE_DEFAULT": json.dumps(nvflare_conn),
            "AIRFLOW_CONN_FLAREFLOW_WAREHOUSE": db.url("flareflow_warehouse"),
            **(celery_env(str(state["broker_url"]), db.url("flareflow_airflow"), WORKER_CONCURRENCY)
               if self.executor == "celery" and state.get("broker_url") else {}),
        }

    def env(self) -> dict[str, str]:
        """Return the full environment for a pipeline command."""
        return {**self.base_env(), **self.service_env()}

    def write_env_file(self) -> Path:
        """Write ``env.sh`` so a shell can ``source`` the stack's settings."""
        path = self.home / "env.sh"
        lines = [f"export {key}={shlex.quote(value)}" for key, value in sorted(self.service_env().items())]
        lines.append(f"export PATH={shlex.quote(str(Path(sys.executable).parent))}:\"$PATH\"")
        path.write_text("\n".join(lines) + "\n")
        return path

    # -- lifecycle --------------------------------------------------------------------------------
    def up(
        self, source: DataSource | None = None, *, airflow_services: bool = False, executor: str | None = None,
        workers: int = 1, site_timeout_s: float = 120,
    ) -> None:
        """Start whatever is not running yet, load each site's data; return once every site is connected.

        :param source: the multi-hospital file to split into the sites' workspaces (default: the one the
            stack remembers from its last ``up``); remembered with the config folder for the next commands
        :param airflow_services: also start Airflow's api-server, scheduler, dag-processor and triggerer
        :param executor: ``local`` (the scheduler runs the tasks) or ``celery`` (Celery workers on a Redis
            broker run them; implies ``airflow_services``); None keeps the last one (at first ``local``)
        :param workers: how many Celery workers (``celery`` only)
        :param site_timeout_s: how long the NVFlare sites may take to connect
        """
        source = source or self.data_source()
        if source is None:
            raise SiteDataError("no data source: give the multi-hospital file (flareflow up --data FILE "
                                "--site-column COLUMN)")
        executor = executor or self.executor
        if executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {EXECUTORS}, not {executor!r}")
        if executor != self.executor and any(service.pid() for service in self.airflow_services()):
            raise RuntimeError(f"Airflow runs with the {self.executor} executor: `flareflow down` first")
        self.check_source(source)  # before anything starts
        self.home.mkdir(parents=True, exist_ok=True)
        if "mlflow_port" not in self._state():
            self._save_state(mlflow_port=free_port(), airflow_port=8080, jwt_secret=os.urandom(24).hex(),
                             nvflare_port=int(os.environ.get(NVFLARE_PORT_ENV, DEFAULT_PORT)))
        if "api_secret_key" not in self._state():
            self._save_state(api_secret_key=os.urandom(24).hex())
        server = postgres.configured_server() or self.embedded_postgres().start()
        postgres.ensure_databases(server)
        self._start_mlflow()
        self._start_federation(source, site_timeout_s)
        self._migrate_airflow()
        if executor == "celery":
            self._find_broker()
            self._save_state(executor=executor, workers=workers)
        else:
            self._save_state(executor=executor)
        if airflow_services or executor == "celery":
            env = self.env()
            for service in self._core_services():
                service.start(env, cwd=self.project)
            for worker in self.celery_workers():
                worker.service().start(worker.env(env), cwd=self.project)
        self.write_env_file()

    def _find_broker(self) -> None:
        """Record a Redis broker unless a live one is recorded (see :func:`flareflow.local.workers.find_broker`)."""
        broker = self.broker()
        if broker is not None and (broker.service is None or broker.service.pid() is not None):
            return
        broker = find_broker(self.home / "redis")
        self._save_state(broker_url=broker.url, broker_claim=broker.claim, broker_private=broker.service is not None)

    def _start_mlflow(self, timeout_s: float = 180) -> None:
        service = self.mlflow_service()
        # MLflow's background job runner (a pool of huey workers) serves no feature flareflow uses
        service.start({**self.base_env(), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, cwd=self.home)
        url = f"{self.service_env()['MLFLOW_TRACKING_URI']}/health"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                if service.pid() is None:
                    break
            time.sleep(1)
        raise RuntimeError(f"MLflow did not become healthy at {url}:\n{service.log_tail()}")

    def check_source(self, source: DataSource) -> None:
        """Fail, naming every problem, unless the file fits the config: its date column and its hospitals.

        :param source: the multi-hospital file
        """
        config = load_pipeline_config(self.config_dir).job("stats")
        if source.date_column and config.data.date_column != source.date_column:
            raise SiteDataError(f"{source.file}: the records are dated by {source.date_column!r} but "
                                f"{self.config_dir}/ has data.date_column {config.data.date_column!r}")
        split_by_site(source, config.federation.sites, config.data.delimiter)

    def _load_site_data(self, source: DataSource, poc: NVFlarePOC) -> None:
        """Write each site's rows into its workspace; remember the source and the config folder."""
        data = load_pipeline_config(self.config_dir).job("stats").data
        written = write_site_data(source, {site: poc.site_workspace(site) for site in poc.sites},
                                  data.file_name, data.delimiter)
        for site, path in written.items():
            log.info("site %s: %s", site, path)
        self._save_state(data_source=source.to_state(), config_dir=str(self.config_dir))

    def _start_federation(self, source: DataSource, site_timeout_s: float) -> None:
        configured = self.sites()
        prepared = self._state().get("sites")
        poc = self.poc(configured)
        if prepared is not None and prepared != configured:
            if self.poc(prepared).is_running():  # type: ignore[arg-type]
                raise SiteDataError(f"the stack at {self.home} runs the sites {prepared}, but {self.config_dir}/ "
                                    f"configures {configured}: stop it first (flareflow down)")
            poc.prepare()
        elif not poc.is_prepared():
            poc.prepare()
        self._save_state(sites=configured)
        self._load_site_data(source, poc)
        if not poc.is_running():
            poc.start()
        poc.wait_until_listening()  # a login before the server listens only logs connection errors
        session = open_session(str(poc.admin_kit), ADMIN_USER, attempts=10)
        try:
            wait_for_sites(session, poc.sites, timeout_s=site_timeout_s)
        finally:
            session.close()

    def _migrate_airflow(self) -> None:
        import subprocess

        marker = self.home / "airflow" / ".migrated"
        if marker.exists():
            return
        airflow = str(Path(sys.executable).with_name("airflow"))
        subprocess.run([airflow, "db", "migrate"], env=self.env(), check=True, capture_output=True,
                       text=True, timeout=900)
        marker.write_text("ok")

    def down(self) -> list[str]:
        """Stop every process ``up`` started, and give the Redis broker back; return their names."""
        stopped = [s.name for s in reversed(self.airflow_services()) if s.stop()]
        broker = self.broker()
        if broker is not None:
            broker.release()
            self._save_state(broker_url="", broker_claim="", broker_private=False)
            stopped.append(f"redis broker ({broker.url})")
        if self.state_file.exists():
            poc = self.poc()
            if poc.is_running():
                poc.stop()
                stopped.append("nvflare-poc")
            if self.mlflow_service().stop():
                stopped.append("mlflow")
        pg = self.embedded_postgres()
        if postgres.configured_server() is None and pg.data.exists() and pg.is_running():
            pg.stop()
            stopped.append("postgres")
        return stopped

    def status(self) -> dict[str, str]:
        """Return each component and whether it runs."""
        pg = self.embedded_postgres()
        report = {
            "postgres": "external" if postgres.configured_server()
            else ("running" if pg.data.exists() and pg.is_running() else "stopped"),
        }
        if self.state_file.exists():
            mlflow = self.mlflow_service()
            report["mlflow"] = "running" if mlflow.pid() else "stopped"
            report["nvflare-poc"] = "running" if self.poc().is_running() else "stopped"
        for service in self.airflow_services():
            report[service.name] = "running" if service.pid() else "stopped"
        broker = self.broker()
        if broker is not None:
            report["celery-broker"] = broker.url
        return report
