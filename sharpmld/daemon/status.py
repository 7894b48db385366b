"""The daemon's status file: what ``sharpmld status`` reads to tell what a daemon is doing.

Every field is derived when written, from the parts that own it (the supervisor's state and
reason, the job in flight, the scanner's held-back entries), so the file can never disagree
with the daemon. The held-back list is rewritten only when it changes, at most once a scan.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from sharpmld.core import fsio
from sharpmld.daemon.context import DaemonContext
from sharpmld.queue.layout import DAEMON_STATUS_PREFIX
from sharpmld.queue.lease import Owner


def note_scan(daemon: DaemonContext, now: float) -> None:
    """After a scan: rewrite the status file if the held-back entries changed."""
    if daemon.held.update(daemon.scanner, now):
        write_status(daemon)


def status_path(state_dir: Path) -> Path:
    """This process's status file (one per daemon: several may share a root)."""
    return state_dir / f"{DAEMON_STATUS_PREFIX}{socket.gethostname()}-{os.getpid()}.json"


def status(daemon: DaemonContext) -> dict[str, Any]:
    """The content of the status file for ``daemon``."""
    supervisor = daemon.supervisor
    current = daemon.current
    extra = {"cluster": daemon.cluster.status()} if daemon.cluster is not None else {}
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
        **extra,
    }


def write_status(daemon: DaemonContext) -> None:
    """Write the file; a failure is not worth stopping for (the next change rewrites it)."""
    with contextlib.suppress(OSError):
        fsio.write_json(status_path(daemon.layout.state_dir), status(daemon))


def sweep_dead_status(state_dir: Path) -> list[str]:
    """Remove the status files, and their temp files, of daemons on this host that are gone.

    A daemon killed outright leaves its status file behind, and one killed while rewriting it
    leaves a temp file too. The pid in the name tells whose it is; another host's files are
    left to that host. Returns the names removed.
    """
    marker = f"{DAEMON_STATUS_PREFIX}{socket.gethostname()}-"
    removed: list[str] = []
    try:
        names = os.listdir(state_dir)
    except OSError:
        return removed
    for name in names:
        temp = fsio.is_temp_name(name)
        target = name.split("-", 3)[-1] if temp else name
        if not (target.startswith(marker) and target.endswith(".json")):
            continue
        pid = target[len(marker) : -len(".json")]
        if not pid.isdigit() or int(pid) == os.getpid() or _still_running(state_dir / name, int(pid), temp):
            continue
        with contextlib.suppress(OSError):
            os.unlink(state_dir / name)
            removed.append(name)
    return removed


def _still_running(path: Path, pid: int, temp: bool) -> bool:
    """The status file's own rule (pid and start time, as leases use); a temp file may be half
    written, so only a pid that no process has any more lets it go."""
    started = 0.0
    if not temp:
        with contextlib.suppress(OSError, ValueError, TypeError):
            started = float(json.loads(path.read_text("utf-8")).get("started", 0.0))
    if started:
        return Owner(socket.gethostname(), pid, started).is_alive()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def remove_status(state_dir: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(status_path(state_dir))


def engine_info(daemon: DaemonContext) -> dict[str, Any]:
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
