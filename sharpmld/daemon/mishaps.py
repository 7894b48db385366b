"""The daemon's error path: a bug costs the job in flight, never the daemon or the queue.

A failure while closing the job is not swallowed either: it is logged with its traceback and
the job's lease is released, so recovery (this daemon's or another's) takes it over instead
of the job sitting in ``working/`` under a live lease until the next restart.
"""

from __future__ import annotations

import errno

from sharpmld.core import log
from sharpmld.core.errors import InternalError
from sharpmld.daemon.context import DaemonContext
from sharpmld.daemon.jobrun import OUTCOME_RELEASED, OUTCOME_TAKEN_OVER, JobRun
from sharpmld.queue.lease import LeaseLost, holds, release_lease

ERROR_PAUSE = 1.0  # after a bug, so that a bug that repeats cannot spin the loop


def on_step_error(daemon: DaemonContext, exc: Exception, now: float) -> None:
    """Log a bug with its traceback; end the job in flight so it cannot loop forever.

    A full disk is not the job's fault: its input goes back to the inbox. Anything else
    fails the job with ``internal_error``.
    """
    daemon.log.exception("internal error in the daemon loop", error=repr(exc))
    daemon.quiet_until = now + ERROR_PAUSE
    run = daemon.current
    if run is None:
        return
    daemon.supervisor.stop(grace=1.0)
    full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    try:
        if full:
            run.hand_back("disk full")
        else:
            run.fail(InternalError())  # the repr is in the log line above, not for people
    except LeaseLost:
        forget(daemon, run)
    except Exception as second:
        release(daemon, run, second)
    daemon.closed(run, now)


def taken_over(daemon: DaemonContext, now: float) -> None:
    """Another daemon adopted the job in flight (this one was paused past the lease timeout).

    The job is the adopter's now: stop the worker at once (it writes into the job folder)
    and let go of the job without writing, moving or releasing anything in it.
    """
    run = daemon.current
    if run is None:
        return
    daemon.supervisor.stop(grace=0.0)
    forget(daemon, run)
    daemon.closed(run, now)


def forget(daemon: DaemonContext, run: JobRun) -> None:
    """Drop a job this daemon no longer holds, touching nothing of it."""
    daemon.log.warning(
        "another daemon took the job over while this one was stopped or cut off; leaving it",
        job_id=run.job.job_id,
    )
    log.detach_job_log(run.job.job_id)
    run.outcome = OUTCOME_TAKEN_OVER


def release(daemon: DaemonContext, run: JobRun, exc: Exception) -> None:
    """The job could not be closed: let recovery take it rather than hold it."""
    daemon.log.exception(
        "could not close the job; released it for recovery", job_id=run.job.job_id, error=repr(exc)
    )
    run.outcome = OUTCOME_RELEASED
    try:
        if not holds(run.job.path, daemon.owner):
            forget(daemon, run)
            return
        release_lease(run.job.path, daemon.owner)
    except OSError as third:
        daemon.log.error(
            "could not release the job; it is recovered at the next start",
            job_id=run.job.job_id,
            error=str(third),
        )
