"""The daemon's status file: what ``sharpmld status`` reads to tell what a daemon is doing.

Every field is derived when written, from the parts that own it (the supervisor's state and
reason, the job in flight), so the file can never disagree with the daemon.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sharpmld.core import fsio
from sharpmld.queue.layout import DAEMON_STATUS_PREFIX

if TYPE_CHECKING:
    from sharpmld.daemon.loop import Daemon


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
