"""Leases: who owns a job in ``working/``, and whether that owner is really gone.

A lease names its owner by host, pid and the process's start time (so a recycled pid is not
mistaken for the owner) and carries a heartbeat time, refreshed while the job runs. Another
daemon may take a job over only when the owner is provably dead: on the same host, no process
with that pid and start time; on another host (a shared SMB/NFS root), a heartbeat older than
the lease timeout.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from sharpmld.core import fsio
from sharpmld.queue.layout import LEASE_FILE


@dataclass(frozen=True)
class Owner:
    """One daemon process, identified well enough to tell it apart from a pid reuse."""

    host: str
    pid: int
    started: float

    @classmethod
    def current(cls) -> Owner:
        """This process."""
        return cls(host=socket.gethostname(), pid=os.getpid(), started=_start_time(os.getpid()))

    def is_alive(self) -> bool:
        """Whether this owner, on this host, still runs (pid and start time both match)."""
        started = _start_time(self.pid)
        return started > 0 and abs(started - self.started) < 1.0

    def tag(self) -> str:
        """A short name-safe mark of this owner, for folders made before a lease can be."""
        return f"o{_host_mark(self.host)}.{self.pid}.{self.started:.1f}"

    @classmethod
    def from_tag(cls, name: str) -> Owner | None:
        """The owner a ``tag()`` in ``name`` names, if it is of this host (else None)."""
        found = _TAG.search(name)
        if found is None or found["host"] != _host_mark(socket.gethostname()):
            return None
        return cls(socket.gethostname(), int(found["pid"]), float(found["started"]))


_TAG = re.compile(r"o(?P<host>[0-9a-f]{8})\.(?P<pid>\d+)\.(?P<started>\d+\.\d)-")


def _host_mark(host: str) -> str:
    return hashlib.sha256(host.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def _start_time(pid: int) -> float:
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return 0.0


@dataclass(frozen=True)
class Lease:
    """The content of ``lease.json``."""

    owner: Owner
    heartbeat: float
    released: bool = False  # the owner let go: anyone may recover the job, owner alive or not

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"owner": asdict(self.owner), "heartbeat": self.heartbeat}
        if self.released:
            out["released"] = True
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Lease:
        o = data["owner"]
        owner = Owner(str(o["host"]), int(o["pid"]), float(o["started"]))
        return cls(owner, float(data["heartbeat"]), bool(data.get("released", False)))


def write_lease(job_dir: Path, owner: Owner, now: float | None = None) -> None:
    """Take or refresh the lease on ``job_dir``."""
    lease = Lease(owner, time.time() if now is None else now)
    fsio.write_json(job_dir / LEASE_FILE, lease.to_dict())


def release_lease(job_dir: Path, owner: Owner, now: float | None = None) -> None:
    """Give a job up for recovery while this process lives on (it could not close the job)."""
    lease = Lease(owner, time.time() if now is None else now, released=True)
    fsio.write_json(job_dir / LEASE_FILE, lease.to_dict())


def read_lease(job_dir: Path) -> Lease | None:
    """The lease, or None when there is none or it cannot be read (a crash mid-claim)."""
    try:
        return Lease.from_dict(json.loads((job_dir / LEASE_FILE).read_text("utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def owner_is_gone(lease: Lease | None, *, lease_timeout: float, now: float | None = None) -> bool:
    """Whether a job with this lease may be recovered by someone else."""
    if lease is None or lease.released:
        return True
    if lease.owner.host == socket.gethostname():
        return not lease.owner.is_alive()
    current = time.time() if now is None else now
    return current - lease.heartbeat > lease_timeout
