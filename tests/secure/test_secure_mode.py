"""Secure mode: the same hook and operator against a provisioned NVFlare project (mutual TLS kits).

The project is provisioned with ``nvflare provision`` and runs on localhost (``provisioned.py``); a
small DAG (``dags/secure_stats.py``) runs the federated statistics job on it through an Airflow
connection to the admin kit, with ``airflow dags test`` on the test stack's Airflow database, so the
operator submits, defers, and its trigger follows the job, as in production.
"""

from __future__ import annotations

import json
import subprocess
from contextlib import closing
from pathlib import Path

import pytest
from provisioned import ADMIN, ProvisionedFederation

import fl_tasks.stats.job as stats_job
from flareflow.hooks.nvflare import COMPLETED, NVFlareUnavailable, job_meta, list_jobs, open_session
from flareflow.local.poc import ADMIN_USER
from flareflow.local.stack import Stack

DAG_ID = "secure_stats"
CONN_ID = "nvflare_secure"
DAGS_FOLDER = Path(__file__).resolve().parent / "dags"
RUN_AT = "2026-11-01T03:00:00+00:00"


@pytest.fixture(scope="module")
def dag_run(stack: Stack, secure_federation: ProvisionedFederation,
            tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the test DAG once on the secure federation; return the folder of its working files."""
    work = tmp_path_factory.mktemp("secure-work")
    env = {
        **stack.env(),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(secure_federation.connection()),
        "FLAREFLOW_WORK_DIR": str(work),
    }
    conf = {"config_overrides": {"federation": {"conn_id": CONN_ID}}}
    log_file = work / "dags-test.log"
    with log_file.open("wb") as out:
        result = subprocess.run(
            [str(Path(stack.project) / ".venv/bin/airflow"), "dags", "test", DAG_ID, RUN_AT,
             "--conf", json.dumps(conf)],
            env=env, cwd=stack.project, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=600,
        )
    output = log_file.read_text(errors="replace")
    assert result.returncode == 0, f"airflow dags test failed:\n{output[-6000:]}"
    return work


def test_the_operator_runs_the_stats_job_on_the_provisioned_server(
    dag_run: Path, secure_federation: ProvisionedFederation, stack: Stack
) -> None:
    (result_file,) = dag_run.glob(f"{DAG_ID}/*/federated_stats/result/*/workspace/{stats_job.RESULT_FILE}")
    job_id = result_file.parents[2].name
    assert stats_job.result_sites(json.loads(result_file.read_text())) == set(secure_federation.sites)
    with closing(open_session(str(secure_federation.admin_kit), ADMIN)) as session:
        assert job_id in list_jobs(session)
        meta = job_meta(session, job_id)
    assert meta["status"] == COMPLETED
    assert meta["submitter_name"] == ADMIN
    assert sorted(meta["mandatory_clients"]) == sorted(secure_federation.sites)
    with closing(open_session(str(stack.poc().admin_kit), ADMIN_USER)) as poc:
        assert job_id not in list_jobs(poc)


def test_each_hospital_read_its_own_kit(dag_run: Path, secure_federation: ProvisionedFederation) -> None:
    for site in secure_federation.sites:
        kit = secure_federation.kit(site)
        assert (kit / "local" / "flareflow" / "heart.csv").is_file()
        assert {path.name for path in (kit / "startup").iterdir()} >= {"client.crt", "client.key", "rootCA.pem"}
        assert any(kit.glob("*/app_*")), f"{site} ran no job from its own kit"


def test_an_admin_kit_from_another_project_is_refused(
    secure_federation: ProvisionedFederation, tmp_path: Path
) -> None:
    impostor = ProvisionedFederation(root=tmp_path / "impostor", sites=secure_federation.sites,
                                     env=secure_federation.env, fed_learn_port=secure_federation.fed_learn_port,
                                     admin_port=secure_federation.admin_port)
    impostor.provision()  # the same names, host and ports; certificates of another root CA
    with pytest.raises(NVFlareUnavailable):
        open_session(str(impostor.admin_kit), ADMIN, login_timeout_s=5, attempts=1).close()
    with closing(open_session(str(secure_federation.admin_kit), ADMIN, login_timeout_s=5, attempts=1)) as session:
        assert set(secure_federation.sites) <= {client.name for client in session.get_system_info().client_info}
