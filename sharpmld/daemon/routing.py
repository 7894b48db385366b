"""Worker events, routed: engine events to the log and the observers, job events to the run.

One function per concern so the loop reads as a list of steps; every function takes the
daemon and the event and leaves the daemon in a consistent state (``Daemon.closed`` is the
one way a job leaves the daemon's hands).
"""

from __future__ import annotations

from sharpmld.daemon import cancelling
from sharpmld.daemon.context import DaemonContext
from sharpmld.daemon.jobrun import OUTCOME_RETRY
from sharpmld.daemon.status import write_status
from sharpmld.protocol import (
    Event,
    ImageDone,
    ImageFailed,
    SupervisorEvent,
    WorkerLost,
    WorkerReady,
    WorkerRecycled,
    WorkerUnavailable,
)


def route(daemon: DaemonContext, event: SupervisorEvent, now: float) -> None:
    """Apply one event from the supervisor."""
    if isinstance(event, WorkerReady | WorkerUnavailable | WorkerLost | WorkerRecycled):
        daemon.events.on_worker(event)
    if isinstance(event, WorkerRecycled):
        daemon.log.info("worker recycled", images=event.images)
    elif isinstance(event, WorkerReady):
        _ready(daemon, event)
    elif isinstance(event, WorkerUnavailable):
        _unavailable(daemon, event)
    elif isinstance(event, WorkerLost):
        _lost(daemon, event, now)
    else:
        _job_event(daemon, event, now)


def _ready(daemon: DaemonContext, event: WorkerReady) -> None:
    info = daemon.supervisor.info
    daemon.unavailable_logged = ""
    daemon.log.info(
        "engine ready",
        device=info.device,
        torch=info.torch,
        load_seconds=info.load_seconds,
        load_method=event.load_method,
    )
    write_status(daemon)


def _unavailable(daemon: DaemonContext, event: WorkerUnavailable) -> None:
    """Say why once per distinct reason: the supervisor retries, and says the same again."""
    message = daemon.supervisor.unavailable_reason or event.message
    if message != daemon.unavailable_logged:
        daemon.unavailable_logged = message
        daemon.log.error(
            "engine unavailable; jobs wait in the inbox",
            reason=message,
            retry_in_seconds=daemon.config.get("worker", "engine_retry_seconds"),
            fix="run `sharpmld doctor`",
        )
    write_status(daemon)


def _lost(daemon: DaemonContext, event: WorkerLost, now: float) -> None:
    daemon.log.warning("worker lost", reason=event.reason, detail=event.detail, exit=event.exit)
    run = daemon.current
    if run is None or not event.busy:
        return
    outcome = run.worker_lost(event.reason, event.detail)
    if outcome == OUTCOME_RETRY:
        daemon.events.on_finished(run, OUTCOME_RETRY)
        daemon.redispatch = True
    else:
        daemon.closed(run, now)


def _job_event(daemon: DaemonContext, event: Event, now: float) -> None:
    run = daemon.current
    if run is None or getattr(event, "job_id", None) != run.job.job_id:
        return  # a late event of a job already closed
    if isinstance(event, ImageDone | ImageFailed):
        daemon.events.on_image(run, event)
    if run.on_event(event):
        run.complete()
        daemon.closed(run, now)
    elif isinstance(event, ImageDone | ImageFailed):
        cancelling.at_boundary(daemon, run, now)
