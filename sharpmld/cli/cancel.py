"""``sharpmld cancel``: a queued job goes straight to ``failed/``; a running one gets a request.

The folder tree is the truth and the CLI or web app is not the daemon, so the two cases differ:

* a job still in the inbox is claimed here with the daemon's own claim (one rename out of the
  inbox; whoever renames first wins, so a daemon claiming at the same moment simply gets it or
  loses it) and then failed the way the daemon fails a job: ``error.json``/``ERROR.txt`` with
  code ``cancelled``, then one rename into ``failed/``. The originals stay in ``input/``.
* a job in ``working/`` belongs to a running daemon: we only write ``working/<job>/CANCEL``
  (temp name, fsync, rename) and the daemon's loop acts on it at its next step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sharpmld.core import fsio
from sharpmld.core.config import Config
from sharpmld.daemon.cancelling import cancelled_error
from sharpmld.daemon.report import write_error
from sharpmld.intake.names import is_in_progress, is_junk
from sharpmld.queue import transitions
from sharpmld.queue.claim import claim
from sharpmld.queue.jobid import is_job_id
from sharpmld.queue.layout import CANCEL_FILE, Layout
from sharpmld.queue.lease import Owner
from sharpmld.queue.record import utcnow


@dataclass(frozen=True)
class CancelOutcome:
    """What a cancel did: ``failed`` (the job is in failed/ now) or ``requested`` (running)."""

    state: str
    path: Path


def cancel(config: Config, job: str, *, by: str = "cli", now: bool = False) -> CancelOutcome | None:
    """Cancel ``job`` (an inbox name, or a working job's id or unique prefix); None if no match."""
    layout = Layout(config.root)
    queued = job and "/" not in job and not (is_junk(job) or is_in_progress(job))
    if queued and os.path.lexists(layout.inbox / job):
        done = _cancel_queued(layout, job, by)
        if done is not None:
            return done
    names = sorted(os.listdir(layout.working)) if layout.working.is_dir() else []
    matches = [n for n in names if is_job_id(n) and n.startswith(job)] if job else []
    if len(matches) != 1:
        return None
    path = layout.working / matches[0]
    fsio.write_json(path / CANCEL_FILE, {"by": by, "now": now, "requested_at": utcnow()})
    return CancelOutcome("requested", path)


def _cancel_queued(layout: Layout, name: str, by: str) -> CancelOutcome | None:
    """Claim the inbox entry like a daemon would, then fail it as cancelled."""
    job = claim(layout, name, Owner.current())
    if job is None:
        return None  # a daemon claimed it first: it is running now
    error = cancelled_error(by)
    write_error(job.path, error, job_id=job.job_id, original_name=job.record.original_name)
    job.record.history.append({"outcome": "cancelled", "by": by, "at": utcnow()})
    job.save()
    moved = transitions.finish(layout, job, "failed")
    return CancelOutcome("failed", moved.path)
