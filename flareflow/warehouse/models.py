"""The warehouse's record of registered model versions: calendar numbers, ``model_versions``, decisions.

The registry (:mod:`flareflow.registry.mlflow_registry`) calls MLflow between these statements while
one transaction holds an advisory lock, so most functions take the cursor of a transaction the caller
keeps open (``with conn, conn.cursor() as cur``).
"""

from __future__ import annotations

from typing import Any

from psycopg2.extensions import connection as Connection


def take_calendar_number(cur: Any, model_name: str, year: int, month: int) -> int:
    """Lock a registered model's data month until the transaction ends; return its next calendar number.

    :param cur: a cursor of the caller's open transaction
    """
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{model_name}:{year}:{month}",))
    cur.execute("SELECT coalesce(max(n), 0) + 1 FROM calendar_numbers "
                "WHERE registered_model = %s AND year = %s AND month = %s", (model_name, year, month))
    return int(cur.fetchone()[0])


def record_version(
    cur: Any, *, run_id: str, model_name: str, year: int, month: int, n: int, calendar_version: str,
    mlflow_version: str, mlflow_run_id: str, config_fingerprint: str,
) -> None:
    """Record a calendar number as used and the run's model version.

    A live version the run recorded before (a re-run that trained a different model) is retired, not
    deleted: its row stays, naming the version that replaced it (see :func:`retire_versions`).

    :param cur: a cursor of the transaction that took the number (:func:`take_calendar_number`)
    """
    cur.execute("INSERT INTO calendar_numbers VALUES (%s, %s, %s, %s, %s)", (model_name, year, month, n, run_id))
    retire_versions(cur, model_name, run_id, keep=mlflow_version, replaced_by=calendar_version)
    cur.execute(
        "INSERT INTO model_versions (run_id, registered_model, year, month, n, calendar_version,"
        " mlflow_version, mlflow_run_id, config_fingerprint) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
        (run_id, model_name, year, month, n, calendar_version, mlflow_version, mlflow_run_id, config_fingerprint),
    )


def retire_versions(cur: Any, model_name: str, run_id: str, *, keep: str, replaced_by: str) -> list[str]:
    """Retire the run's live versions other than ``keep``; return their MLflow versions (none if done before).

    :param cur: a cursor of the caller's open transaction
    :param keep: the MLflow version that stays live
    :param replaced_by: the calendar version that replaces them
    """
    cur.execute(
        "UPDATE model_versions SET retired_at = clock_timestamp(), replaced_by = %s,"
        " retired_reason = 'replaced by ' || %s || ': a re-run of ' || run_id || ' trained a different model'"
        " WHERE registered_model = %s AND run_id = %s AND mlflow_version <> %s AND retired_at IS NULL"
        " RETURNING mlflow_version",
        (replaced_by, replaced_by, model_name, run_id, keep),
    )
    return [row[0] for row in cur.fetchall()]


def recorded_version(conn: Connection, model_name: str, run_id: str) -> tuple[str, str, str | None] | None:
    """Return (calendar version, MLflow version, MLflow run id) of a run's live version of a model, if any."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT calendar_version, mlflow_version, mlflow_run_id FROM model_versions"
                    " WHERE run_id = %s AND registered_model = %s AND retired_at IS NULL", (run_id, model_name))
        row = cur.fetchone()
    return None if row is None else (row[0], row[1], row[2])


def lock_promotions(cur: Any, model_name: str) -> None:
    """Serialize the alias changes of one registered model until the transaction ends."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{model_name}:champion",))


def record_promotion(
    cur: Any, model_name: str, mlflow_version: str, *, role: str | None, reason: str, validation_auc: float,
    previous_champion: str | None, approval: str | None = None, approval_by: str | None = None,
) -> None:
    """Record the champion/challenger decision of a model version (its first decision time is kept).

    :param role: ``champion``, ``challenger``, or None while the version awaits approval
    :param approval: ``awaiting``, ``approved``, ``rejected``, ``timed_out``; None when promoted automatically
    :param approval_by: the user who answered
    :raises LookupError: when the version has no ``model_versions`` row
    """
    cur.execute(
        "UPDATE model_versions SET role = %s, promotion_reason = %s, validation_auc = %s,"
        " previous_champion = %s, approval = %s, approval_by = %s,"
        " decided_at = CASE WHEN %s IS NULL THEN NULL ELSE coalesce(decided_at, clock_timestamp()) END"
        " WHERE registered_model = %s AND mlflow_version = %s",
        (role, reason, validation_auc, previous_champion, approval, approval_by, role, model_name, mlflow_version),
    )
    if cur.rowcount != 1:
        raise LookupError(f"{model_name} version {mlflow_version} has no row in model_versions")


def versions_decided(cur: Any, model_name: str, role: str) -> list[tuple[str, str]]:
    """Return (MLflow version, calendar version) of the live versions decided ``role``, latest decision first."""
    cur.execute("SELECT mlflow_version, calendar_version FROM model_versions"
                " WHERE registered_model = %s AND role = %s AND retired_at IS NULL ORDER BY decided_at DESC",
                (model_name, role))
    return [(version, calendar) for version, calendar in cur.fetchall()]
