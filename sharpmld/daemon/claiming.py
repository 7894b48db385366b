"""What to work on next: an orphaned job first (at most every few seconds), else the inbox.

The policy only picks and claims; ``Daemon.begin`` takes the job from there. Claiming waits
while intake is paused (stopping, low disk, no engine), until the worker is ready, and until
the checkpoint's digest is known (it goes into every job's record and cache key).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sharpmld.core.errors import ClaimRefused
from sharpmld.daemon.context import DaemonContext
from sharpmld.intake.names import is_in_progress, is_junk
from sharpmld.intake.scanner import NOT_WRITABLE
from sharpmld.queue import recovery
from sharpmld.queue.claim import claim
from sharpmld.queue.record import Job
from sharpmld.supervisor import supervisor as sv

ORPHAN_CHECK_SECONDS = 10.0


@dataclass(frozen=True)
class Claimed:
    """A job this daemon now owns, with how long it waited (-1 when not known: adopted)."""

    job: Job
    settle_wait: float
    queue_wait: float


def paused_reason(daemon: DaemonContext, now: float) -> str:
    """Why no job would be claimed now ("" when intake is open)."""
    if daemon.stopping.requested:
        return "shutting_down"
    if daemon.housekeeping.disk_paused(now):
        return "low_disk"
    if daemon.supervisor.state == sv.UNAVAILABLE:
        return "engine_unavailable"
    return ""


def next_job(daemon: DaemonContext, now: float) -> Claimed | None:
    """Claim or adopt one job, or None when there is nothing to do (or we must not)."""
    if paused_reason(daemon, now):
        return None
    if daemon.supervisor.state != sv.READY or not daemon.hasher.done.is_set():
        return None
    if now >= daemon.next_orphan_check:
        daemon.next_orphan_check = now + ORPHAN_CHECK_SECONDS
        adopted = adopt_orphan(daemon)
        if adopted is not None:
            return Claimed(adopted, settle_wait=-1.0, queue_wait=-1.0)
    while daemon.ready:
        entry = daemon.ready.pop(0)
        daemon.scanner.forget(entry.name)
        try:
            job = claim(daemon.layout, entry.name, daemon.owner, priority=entry.priority)
        except ClaimRefused:
            # Renaming a folder needs write permission on it: hold it, say so once.
            daemon.scanner.refuse(entry.name, NOT_WRITABLE)
            daemon.held.report(daemon.scanner, daemon.log)
            continue
        if job is None:
            continue  # another daemon on this root took it first
        daemon.log.info("job claimed", job_id=job.job_id, original_name=entry.name)
        ready_at = entry.ready_at if entry.ready_at is not None else now
        return Claimed(job, settle_wait=ready_at - entry.first_seen, queue_wait=now - ready_at)
    return None


def adopt_orphan(daemon: DaemonContext) -> Job | None:
    """Take over the oldest job whose owner is gone; remove claims that never got their data."""
    timeout = daemon.lease_timeout
    for path in recovery.find_orphans(daemon.layout, daemon.owner, lease_timeout=timeout):
        if not recovery.has_input(path):
            daemon.log.info("removing an unfinished claim", path=str(path))
            recovery.release(path)
            continue
        job = recovery.adopt(path, daemon.owner, lease_timeout=timeout, state_dir=daemon.layout.state_dir)
        if job is None:
            continue
        daemon.log.info(
            "recovering job left by a stopped daemon", job_id=job.job_id, attempts=job.record.attempts
        )
        return job
    return None


def nothing_left(daemon: DaemonContext) -> bool:
    """Burst mode ends when nothing waits anywhere this daemon could act on (an entry it cannot
    read or move waits for a person, not for this run)."""
    try:
        names = os.listdir(daemon.layout.inbox)
    except FileNotFoundError:
        names = []
    stuck = daemon.scanner.stuck
    if any(not (is_junk(n) or is_in_progress(n) or n in stuck) for n in names):
        return False
    orphans = recovery.find_orphans(daemon.layout, daemon.owner, lease_timeout=daemon.lease_timeout)
    return next(orphans, None) is None
