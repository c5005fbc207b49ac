"""The ``airflow flareflow`` command group; the commands' code is imported only when one runs."""

from __future__ import annotations

from airflow.cli.cli_config import ActionCommand, Arg, GroupCommand, lazy_load_command

ARG_DAG_ID = Arg(("--dag-id",), default="federated_retraining", help="The pipeline's DAG (default: %(default)s)")
ARG_DRY_RUN = Arg(("--dry-run",), action="store_true", help="List the stale months, trigger nothing")

FLAREFLOW_COMMANDS = (
    ActionCommand(
        name="backfill-stale",
        help="Recompute exactly the data months computed with a config other than the current one",
        description=(
            "Compare each data month's latest successful run in the warehouse with the current config (the "
            "config folder's fingerprint) and trigger one run of the DAG per month computed with another "
            "config, its data_month param set to that month. The scheduler runs them."
        ),
        func=lazy_load_command("flareflow.cli.backfill.backfill_stale"),
        args=(ARG_DAG_ID, ARG_DRY_RUN),
    ),
)


def get_flareflow_cli_commands() -> list[GroupCommand]:
    """Return the ``airflow flareflow`` command group."""
    return [GroupCommand(name="flareflow", help="flareflow: federated learning on NVIDIA FLARE",
                         subcommands=FLAREFLOW_COMMANDS)]
