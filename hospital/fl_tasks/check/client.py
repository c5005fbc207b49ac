"""A hospital's side of the federated data check (NVFlare Client API): check the own file, send counts.

Only the report (counts and shares, see ``fl_tasks.check.report``) leaves the site. A bad file never
crashes the client: the report says what is wrong with it.
"""

from __future__ import annotations

import logging

import nvflare.client as flare
from nvflare.app_common.abstract.fl_model import FLModel

from fl_tasks.check.report import Report, failed_report, site_report
from fl_tasks.jobs import read_client_config, site_workspace

log = logging.getLogger(__name__)


def checked(settings: dict) -> Report:
    """Return this site's report; if checking itself fails, a report saying so (never the error's text).

    :param settings: the job's client settings
    """
    try:
        return site_report(site_workspace(), settings)
    except Exception as err:  # an unforeseen failure must still reach the research centre as a report
        log.error("checking the data file failed: %s", type(err).__name__)
        return failed_report(settings, f"checking it failed at the site ({type(err).__name__})")


def main() -> None:
    flare.init()
    settings = read_client_config(site_workspace(), flare.get_job_id(), flare.get_site_name())
    while flare.is_running():
        incoming = flare.receive()
        if incoming is None:
            break
        flare.send(FLModel(metrics=checked(settings)))


if __name__ == "__main__":
    main()
