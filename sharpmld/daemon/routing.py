"""Worker events, routed: engine events to the log and the observers, job events to the run.

One function per concern so the loop reads as a list of steps; every function takes the
daemon and the event and leaves the daemon in a consistent state (``Daemon.closed`` is the
one way a job leaves the daemon's hands).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sharpmld.daemon.jobrun import OUTCOME_RETRY
from sharpmld.daemon.status import write_status

if TYPE_CHECKING:
    from sharpmld.daemon.loop import Daemon

ENGINE_EVENTS = ("ready", "unavailable", "worker_lost", "worker_recycled")


def route(daemon: Daemon, event: dict[str, Any], now: float) -> None:
    """Apply one event from the supervisor."""
    kind = event.get("ev")
    if kind in ENGINE_EVENTS:
        daemon.events.on_worker(event)
    if kind == "worker_recycled":
        daemon.log.info("worker recycled", images=event.get("images"))
    elif kind == "ready":
        _ready(daemon, event)
    elif kind == "unavailable":
        _unavailable(daemon, event)
    elif kind == "worker_lost":
        _lost(daemon, event, now)
    else:
        _job_event(daemon, event, now)


def _ready(daemon: Daemon, event: dict[str, Any]) -> None:
    info = daemon.supervisor.info
    daemon.unavailable_logged = ""
    daemon.log.info(
        "engine ready",
        device=info.device,
        torch=info.torch,
        load_seconds=info.load_seconds,
        load_method=event.get("load_method"),
    )
    write_status(daemon)


def _unavailable(daemon: Daemon, event: dict[str, Any]) -> None:
    """Say why once per distinct reason: the supervisor retries, and says the same again."""
    message = daemon.supervisor.unavailable_reason or str(event.get("message"))
    if message != daemon.unavailable_logged:
        daemon.unavailable_logged = message
        daemon.log.error(
            "engine unavailable; jobs wait in the inbox",
            reason=message,
            retry_in_seconds=daemon.config.get("worker", "engine_retry_seconds"),
            fix="run `sharpmld doctor`",
        )
    write_status(daemon)


def _lost(daemon: Daemon, event: dict[str, Any], now: float) -> None:
    daemon.log.warning("worker lost", reason=event.get("reason"), detail=event.get("detail"))
    run = daemon.current
    if run is None or not event.get("busy"):
        return
    outcome = run.worker_lost(str(event["reason"]), str(event.get("detail", "")))
    if outcome == OUTCOME_RETRY:
        daemon.events.on_finished(run, OUTCOME_RETRY)
        daemon.redispatch = True
    else:
        daemon.closed(run, now)


def _job_event(daemon: Daemon, event: dict[str, Any], now: float) -> None:
    run = daemon.current
    if run is None or event.get("job_id") != run.job.job_id:
        return  # a late event of a job already closed
    if event.get("ev") == "image_done":
        daemon.events.on_image(run, event)
    if run.on_event(event):
        run.complete()
        daemon.closed(run, now)
