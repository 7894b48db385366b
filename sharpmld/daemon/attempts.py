"""Attempt accounting: which tries count against a job, and when a job has had enough.

A try is opened the moment a job is handed to the model and closed with what really ended
it. It is charged to the job (counted in ``attempts``) only when it ended with evidence
about the job; daemon deaths are counted apart (``daemon_restarts``, by recovery) and
handing a job back charges nothing. This module decides; the run carries the verdict out.
"""

from __future__ import annotations

from sharpmld.core.config import Config
from sharpmld.core.errors import (
    DaemonKeptDying,
    EngineCrash,
    OutOfMemory,
    SharpmldError,
    Timeout,
    TooManyAttempts,
    format_advice,
)
from sharpmld.core.faults import crashpoint
from sharpmld.queue import recovery
from sharpmld.queue.record import Job, utcnow

# What ended a try, as recorded in its history entry, by the reason the worker was lost.
WORKER_LOST_OUTCOMES = {"crash": "worker_crash", "timeout": "timeout", "memory": "out_of_memory"}


def begin(job: Job) -> None:
    """Record a try the moment the job is handed to the model; it is charged when it ends."""
    record = job.record
    record.history.append(
        {
            "attempt": len(record.history) + 1,
            "host": record.host,
            "started_at": utcnow(),
            "outcome": recovery.OUTCOME_RUNNING,
        }
    )
    job.save()
    crashpoint("dispatched")


def close(job: Job, outcome: str, *, charged: bool = True) -> None:
    """End the try in flight with what really ended it, charging it to the job if due."""
    record = job.record
    if record.history and record.history[-1].get("outcome") == recovery.OUTCOME_RUNNING:
        record.history[-1].update(outcome=outcome, ended_at=utcnow())
        if charged:
            record.attempts += 1
        job.save()


def exhausted(job: Job, config: Config) -> SharpmldError | None:
    """Why the job may not have another try, or None (checked before a try).

    Daemon deaths have their own, higher limit: a job is not to blame for them, but one
    that brings the daemon down every time must not be retried forever.
    """
    record = job.record
    restarts = int(config.get("queue", "max_daemon_restarts"))
    if record.daemon_restarts >= restarts:
        message = format_advice(DaemonKeptDying, restarts=record.daemon_restarts)
        return DaemonKeptDying(message, restarts=record.daemon_restarts, history=record.history)
    if record.attempts >= int(config.get("queue", "max_attempts")):
        return TooManyAttempts(history=record.history)
    return None


def lost_verdict(job: Job, config: Config, reason: str, detail: str) -> SharpmldError | None:
    """After losing the worker mid-job (the try already closed): the job's error, or None to retry.

    A timeout or running out of memory is the job's own doing and fails it at once; a crash
    is retried until the job has used its tries.
    """
    if reason == "timeout":
        return Timeout(details_text(Timeout.advice, detail), reason=detail)
    if reason == "memory":
        return OutOfMemory(details_text(OutOfMemory.advice, detail), reason=detail)
    if (attempts := job.record.attempts) >= int(config.get("queue", "max_attempts")):
        said = f"The engine failed on all {attempts} attempts at this job"
        return EngineCrash(f"{said} (last: {detail}).", reason=detail)
    return None


def details_text(advice: str, detail: str) -> str:
    """A job-level message: the plain advice followed by what exactly happened."""
    return f"{advice} ({detail[0].upper() + detail[1:]}.)" if detail else advice
