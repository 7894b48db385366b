"""The daemon's status file: what ``sharpmld status`` reads to tell what a daemon is doing.

Every field is derived when written, from the parts that own it (the supervisor's state and
reason, the job in flight, the scanner's held-back entries), so the file can never disagree
with the daemon. The held-back list is rewritten only when it changes, at most once a scan.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from sharpmld.core import fsio
from sharpmld.intake.scanner import IN_PROGRESS, NO_READY_MARKER, TEMP_NAME, Held, InboxScanner
from sharpmld.queue.layout import DAEMON_STATUS_PREFIX

if TYPE_CHECKING:
    from sharpmld.daemon.loop import Daemon

HELD_SHOWN = 50
"""At most this many held-back entries go into the status file (the total is always there)."""


def held_message(held: Held, scanner: InboxScanner) -> str:
    """Why ``held`` is not taken yet, and what makes it go, for a person."""
    if held.reason == IN_PROGRESS:
        return (
            f"holds {held.path}, named like a copy still arriving: taken after "
            f"{scanner.in_progress_hold:g} s unchanged ([intake] in_progress_seconds)"
        )
    if held.reason == NO_READY_MARKER:
        return f"waits for a file named {scanner.marker} in it ([intake] ready_marker)"
    if held.reason == TEMP_NAME:
        suffix = PurePosixPath(held.name).suffix or "the temporary ending"
        return f"named like a copy still arriving: never taken; rename it without {suffix} when complete"
    return f"settling: taken after {scanner.settle:g} s unchanged ([intake] settle_seconds)"


class HeldBack:
    """The held-back entries as last written, so the file is rewritten only on a change."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.total = 0
        self._key: tuple[Any, ...] = ()

    def update(self, scanner: InboxScanner, now: float) -> bool:
        """Take the scanner's view at scan time ``now``; True if it differs from the last one."""
        held = scanner.held_back()
        key = (len(held), *((h.name, h.reason, h.path, h.due) for h in held[:HELD_SHOWN]))
        if key == self._key:
            return False
        self._key = key
        wall = time.time()  # ``now`` is the loop's clock; people read wall-clock times
        self.total = len(held)
        self.entries = [
            {
                "name": h.name,
                "reason": h.reason,
                "path": h.path or None,
                "until": None if h.due is None else wall + (h.due - now),
                "message": held_message(h, scanner),
            }
            for h in held[:HELD_SHOWN]
        ]
        return True


def note_scan(daemon: Daemon, now: float) -> None:
    """After a scan: rewrite the status file if the held-back entries changed."""
    if daemon.held.update(daemon.scanner, now):
        write_status(daemon)


def status_path(state_dir: Path) -> Path:
    """This process's status file (one per daemon: several may share a root)."""
    return state_dir / f"{DAEMON_STATUS_PREFIX}{socket.gethostname()}-{os.getpid()}.json"


def status(daemon: Daemon) -> dict[str, Any]:
    """The content of the status file for ``daemon``."""
    supervisor = daemon.supervisor
    current = daemon.current
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": daemon.owner.started,
        "engine": supervisor.state,
        "engine_message": supervisor.unavailable_reason,
        "device": supervisor.info.device,
        "current_job": current.job.job_id if current is not None else None,
        "paused": daemon.paused,
        "updated": time.time(),
        "metrics_port": daemon.metrics.port if daemon.metrics is not None else None,
        "held_back": daemon.held.entries,
        "held_back_total": daemon.held.total,
    }


def write_status(daemon: Daemon) -> None:
    """Write the file; a failure is not worth stopping for (the next change rewrites it)."""
    with contextlib.suppress(OSError):
        fsio.write_json(status_path(daemon.layout.state_dir), status(daemon))


def remove_status(state_dir: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(status_path(state_dir))


def engine_info(daemon: Daemon) -> dict[str, Any]:
    """What a job's result.json records of the engine that ran it."""
    info = daemon.supervisor.info
    return {
        "device": info.device,
        "torch": info.torch,
        "model": daemon.config.get("model", "factory"),
        "checkpoint": str(daemon.config.checkpoint),
        "checkpoint_sha256": daemon.hasher.value,
        "load_seconds": info.load_seconds,
    }
