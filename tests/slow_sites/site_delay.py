"""A slow hospital: a site-local NVFlare task result filter that holds a task's result before it leaves.

This file is not part of flareflow. The slow-site test and benchmark copy it into one site's
``local/custom/`` and list :class:`DelayResult` in that site's ``local/privacy.json`` (the default
privacy scope, which applies to every job that names no scope). NVFlare reads both when a job's
process starts at the site and runs the filter after the site's own task filters, so only that
site, only while the test configures it, answers late. It imports nothing but NVFlare: it runs in
the site's job process.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from nvflare.apis.filter import Filter
from nvflare.apis.fl_constant import FLContextKey
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable

#: the line the filter logs in the site's job log, with the task name and the delay
DELAY_LOG = "slow site: held the result of task"


class DelayResult(Filter):
    """Hold the result of each of ``tasks`` for ``delay_s`` seconds, then pass it on unchanged.

    :param delay_s: how long to hold each result
    :param tasks: the task names to delay (all tasks when empty)
    """

    def __init__(self, delay_s: float, tasks: Sequence[str] = ()) -> None:
        super().__init__()
        self.delay_s = float(delay_s)
        self.tasks = list(tasks)

    def process(self, shareable: Shareable, fl_ctx: FLContext) -> Shareable:
        task = fl_ctx.get_prop(FLContextKey.TASK_NAME)
        if self.tasks and task not in self.tasks:
            return shareable
        started = time.monotonic()
        time.sleep(self.delay_s)
        self.log_info(fl_ctx, f"{DELAY_LOG} {task} for {time.monotonic() - started:.3f} s")
        return shareable
