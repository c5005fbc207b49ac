"""PromotionApprovalOperator: a person approves or rejects a new model version before it becomes champion.

Airflow's human-in-the-loop operator: on Airflow 3.3 the task waits in the ``awaiting_input`` state,
holding no worker slot and no trigger, until someone answers in the UI (the run's *Required actions*)
or through the REST API, or until ``mlflow.approval_timeout_s`` passes (the scheduler then answers
*Reject* on nobody's behalf). It runs only when the version passed the champion rule under
``mlflow.promotion: approval``; otherwise it is skipped.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Context, Param
from airflow.sdk.exceptions import AirflowSkipException

from flareflow.registry import AWAITING

APPROVE = "Approve"
REJECT = "Reject"


def _who(user: Any) -> str | None:
    """Return the name of the user who answered, or None (the timeout's default answer)."""
    if not user:
        return None
    return str(user.get("name") or user.get("id"))


class PromotionApprovalOperator(HITLOperator):
    """Wait for a person to approve the run's model version as champion; apply the answer to the registry.

    Approved, the version takes the ``champion`` alias; rejected or unanswered in time, it stays a
    challenger. The reason (who, their comment, or the timeout) goes to the version's tags and its
    ``model_versions`` row. Returns the final decision (the register task's XCom, updated).

    :param model_task_id: the task whose XCom holds the registered version and its pending decision
    :param config_task_id: the task whose XCom holds the validated configs
    """

    def __init__(self, *, model_task_id: str = "register_model", config_task_id: str = "validate_config",
                 **kwargs: Any) -> None:
        # the form's one field; the DAG's params, which Airflow passes here too, are no question for the approver
        kwargs.pop("params", None)
        params = {"comment": Param("", type="string", title="Comment",
                                   description="Why (optional): recorded with the decision")}
        super().__init__(subject="Promote the new model version to champion?", options=[APPROVE, REJECT],
                         defaults=[REJECT], multiple=False, params=params, **kwargs)
        self.model_task_id = model_task_id
        self.config_task_id = config_task_id

    def _inputs(self, context: Context) -> tuple[dict[str, Any], dict[str, Any]]:
        ti = context["ti"]
        return ti.xcom_pull(task_ids=self.config_task_id), ti.xcom_pull(task_ids=self.model_task_id)

    def execute(self, context: Context) -> Any:
        validated, model = self._inputs(context)
        if not model or model.get("approval") != AWAITING:
            reason = "automatic promotion" if not (model or {}).get("approval") else "nothing awaits approval"
            raise AirflowSkipException(f"{reason}: {(model or {}).get('calendar_version')} is "
                                       f"{(model or {}).get('role')}")
        mlflow = validated["jobs"]["train"]["mlflow"]
        self.response_timeout = timedelta(seconds=mlflow["approval_timeout_s"])
        self.subject = f"Promote {model['registered_model']} {model['calendar_version']} to champion?"
        self.body = "\n".join([
            f"Version **{model['calendar_version']}** (MLflow version {model['mlflow_version']}) of "
            f"`{model['registered_model']}` passed the champion rule: {model['promotion_reason']}.",
            "",
            f"- current champion: {model.get('previous_champion') or 'none'}",
            f"- validation AUC: {float(model['validation_auc']):.4f}",
            f"- Airflow run: `{context['run_id']}`, config `{model.get('config_fingerprint', '')[:12]}`",
            f"- unanswered within {mlflow['approval_timeout_s']} s, it stays a challenger",
        ])
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Apply the answer (or the timeout's default) to the registry and the warehouse."""
        from flareflow import pipeline
        from flareflow.warehouse import connect

        answer = super().execute_complete(context, event)
        validated, model = self._inputs(context)
        by = None if event.get("timedout") else _who(answer["responded_by_user"])
        approved = answer["chosen_options"] == [APPROVE] and by is not None
        comment = str((answer.get("params_input") or {}).get("comment") or "")
        conn = connect(validated["jobs"]["stats"]["warehouse"]["conn_id"])
        try:
            settled = pipeline.settle_approval(conn, validated, model, approved=approved, by=by, comment=comment)
        finally:
            conn.close()
        self.log.info("%s %s: %s", model["calendar_version"], settled["role"], settled["promotion_reason"])
        return settled
