"""The cluster worker's status file: who it is, whether its model is warm, what it holds.

One file per worker process under ``<root>/.sharpmld/workers/<host id>.<pid>.json`` on the
shared root, so the intake and ``sharpmld status`` on any host can list the workers of the
cluster by host. Written whole (temp name, fsync, rename) whenever something in it changes and
at every heartbeat; removed on a clean stop. A worker killed outright leaves its file behind:
its ``last_heartbeat`` going stale is what tells a reader it is gone.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sharpmld.core import fsio
from sharpmld.queue.cluster_workers import WORKERS_DIR


def status_path(state_dir: Path, host_id: str, pid: int | None = None) -> Path:
    return state_dir / WORKERS_DIR / f"{host_id}.{os.getpid() if pid is None else pid}.json"


@dataclass
class WorkerStatus:
    """The content of the file; the loop updates the fields it owns and calls ``write``."""

    host_id: str
    broker: str
    started: float
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    device: str = ""
    model: str = "stopped"  # the supervisor's state: starting, ready, busy, backoff, ...
    model_warm: bool = False
    model_message: str = ""
    connected: bool = False
    current_photo: dict[str, Any] | None = None  # job, photo, attempt, delivered, since
    last_heartbeat: float | None = None  # wall clock of the last in_progress() sent
    photos_done: int = 0
    metrics_port: int | None = None  # where its /metrics is served, when it is
    updated: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_status(state_dir: Path, status: WorkerStatus, now_wall: float) -> None:
    """Write the file; a failure (the share away for a moment) waits for the next change."""
    status.updated = now_wall
    path = status_path(state_dir, status.host_id, status.pid)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fsio.write_json(path, status.as_dict())


def remove_status(state_dir: Path, status: WorkerStatus) -> None:
    with contextlib.suppress(FileNotFoundError):
        status_path(state_dir, status.host_id, status.pid).unlink()
