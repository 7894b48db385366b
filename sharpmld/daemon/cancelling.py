"""Cancel requests for the job in flight: ``working/<job>/CANCEL``, written by ``sharpmld cancel``.

The CLI and the web app are other processes, so they only leave a request file in the job's
folder; the loop looks for it each step (one ``stat``). A plain request waits for the next
photo boundary (the worker's next ``ImageDone``/``ImageFailed``), so every finished photo is
kept; ``--now`` kills the worker at once. Either way the job then fails with code
``cancelled``, its result.json listing what was done and its originals in ``input/``.
"""

from __future__ import annotations

import json
from typing import Any

from sharpmld.core.errors import Cancelled
from sharpmld.daemon import attempts
from sharpmld.daemon.context import DaemonContext
from sharpmld.daemon.jobrun import JobRun
from sharpmld.queue.layout import CANCEL_FILE
from sharpmld.supervisor import supervisor as sv

WHO = {"cli": "the command line", "web": "the web app"}


def cancelled_error(by: str, *, now: bool = False) -> Cancelled:
    """The one error every cancelled job carries, saying who asked (the CLI's too)."""
    how = " at once (the worker was stopped)" if now else ""
    return Cancelled(f"{Cancelled.advice} Cancelled from {WHO.get(by, by)}{how}.", by=by, now=now)


def _request(run: JobRun) -> dict[str, Any] | None:
    try:
        data = json.loads((run.job.path / CANCEL_FILE).read_text("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        data = {}  # unreadable still means someone asked: cancel at the boundary
    return data if isinstance(data, dict) else {}


def step(daemon: DaemonContext, now: float) -> None:
    """Notice a new request; act at once when it says ``now`` or no photo is running."""
    run = daemon.current
    if run is None:
        return
    if run.cancel is None:
        run.cancel = _request(run)
        if run.cancel is None:
            return
        daemon.log.info("cancel requested", job_id=run.job.job_id, by=run.cancel.get("by"))
    at_once = bool(run.cancel.get("now"))
    if at_once or daemon.supervisor.state != sv.BUSY:  # nothing in flight to wait for
        close(daemon, run, now)


def at_boundary(daemon: DaemonContext, run: JobRun, now: float) -> bool:
    """After a photo ended: close a cancelled job here; True when it did."""
    if run.cancel is None:
        return False
    close(daemon, run, now)
    return True


def close(daemon: DaemonContext, run: JobRun, now: float) -> None:
    """Stop the worker on this job (it may be mid-photo) and fail the job as cancelled."""
    request = run.cancel or {}
    at_once = bool(request.get("now"))
    if daemon.supervisor.state == sv.BUSY:
        daemon.supervisor.abandon(now)
    daemon.redispatch = False
    (run.job.path / CANCEL_FILE).unlink(missing_ok=True)
    # Not the job's fault: the try is not charged, so a retry later gets every attempt.
    attempts.close(run.job, "cancelled", charged=False)
    run.fail(cancelled_error(str(request.get("by") or "cli"), now=at_once))
    daemon.closed(run, now)
