"""Leases: who owns a job in ``working/``, and whether that owner is really gone.

A lease names its owner by machine id (``core.hostid``: host names repeat on cloned machines
and change with the network), pid and the process's start time (so a recycled pid is not
mistaken for the owner), and is rewritten at every heartbeat while the job runs. Another
daemon may take a job over only when the owner is provably dead: on the same machine, no
process with that pid and start time; on another machine (a shared SMB/NFS root), a lease not
rewritten for the lease timeout.

"Not rewritten for" is measured on one clock only, the file server's: the lease file's
modification time against a probe file written just now (``server_time``). Comparing this
host's clock with the time another host wrote into the file turned clock skew beyond the
lease timeout into double runs. The ``heartbeat`` inside the file is for people only.

Fencing: an owner that was paused (laptop lid, SIGSTOP) and comes back must not carry on with
a job another daemon adopted meanwhile. ``holds`` tells it, before each heartbeat and before
the job is closed: the lease names someone else, or an adoption marker names this owner.
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

from sharpmld.core import fsio, hostid
from sharpmld.queue.layout import LEASE_FILE

ADOPT_PREFIX = "adopted-"
_THIS_HOST: list[str] = []  # this machine's id, read once per process


def this_host_id() -> str:
    """This machine's persistent id (see ``core.hostid``)."""
    if not _THIS_HOST:
        _THIS_HOST.append(hostid.host_id())
    return _THIS_HOST[0]


class LeaseLost(Exception):
    """Another daemon holds the job now: this one must stop and touch nothing of it."""


@dataclass(frozen=True)
class Owner:
    """One daemon process, identified well enough to tell it apart from a pid reuse."""

    host: str  # the host name, for people; ``host_id`` tells machines apart
    pid: int
    started: float
    host_id: str = ""  # empty in leases written before machine ids existed

    @classmethod
    def current(cls) -> Owner:
        """This process."""
        pid = os.getpid()
        return cls(socket.gethostname(), pid, _start_time(pid), this_host_id())

    def on_this_host(self) -> bool:
        """Whether this owner ran on this machine (by machine id; by name for old leases)."""
        if self.host_id:
            return self.host_id == this_host_id()
        return self.host == socket.gethostname()

    def is_alive(self) -> bool:
        """Whether this owner, on this host, still runs (pid and start time both match)."""
        started = _start_time(self.pid)
        return started > 0 and abs(started - self.started) < 1.0

    def same_process(self, other: Owner) -> bool:
        """Whether ``other`` names this very process (the host name may have changed since)."""
        mine = (self.host_id or self.host, self.pid, round(self.started, 3))
        return mine == (other.host_id or other.host, other.pid, round(other.started, 3))

    def tag(self) -> str:
        """A short name-safe mark of this owner, for folders made before a lease can be."""
        return f"o{_host_mark(self.host_id or self.host)}.{self.pid}.{self.started:.1f}"

    @classmethod
    def from_tag(cls, name: str) -> Owner | None:
        """The owner a ``tag()`` in ``name`` names, if it is of this host (else None)."""
        found = _TAG.search(name)
        if found is None or found["host"] != _host_mark(this_host_id()):
            return None
        return cls(socket.gethostname(), int(found["pid"]), float(found["started"]), this_host_id())

    def adoption_marker(self) -> str:
        """The write-once file an adopter creates in a job it takes over from this owner."""
        who = f"{self.host_id or self.host}-{self.pid}-{self.started:.0f}"
        return fsio.fit_name(f"{ADOPT_PREFIX}{who}")


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
    heartbeat: float  # the writer's own clock: for people, never compared with another's
    released: bool = False  # the owner let go: anyone may recover the job, owner alive or not
    written: float = 0.0  # the file's modification time, on the file server's clock

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"owner": asdict(self.owner), "heartbeat": self.heartbeat}
        if self.released:
            out["released"] = True
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], written: float = 0.0) -> Lease:
        o = data["owner"]
        owner = Owner(str(o["host"]), int(o["pid"]), float(o["started"]), str(o.get("host_id", "")))
        return cls(owner, float(data["heartbeat"]), bool(data.get("released", False)), written)


def write_lease(job_dir: Path, owner: Owner, now: float | None = None) -> None:
    """Take or refresh the lease on ``job_dir`` (``now``: the writer's wall clock, for people)."""
    lease = Lease(owner, time.time() if now is None else now)
    fsio.write_json(job_dir / LEASE_FILE, lease.to_dict())


def holds(job_dir: Path, owner: Owner) -> bool:
    """Whether ``owner`` still holds the job: the fencing check before it writes or closes.

    False when the lease names another owner, or when an adopter's write-once marker names
    this one (it is created before the adopter rewrites the lease, so it also catches an
    owner whose last heartbeat overwrote the adopter's lease). A missing lease is not ours
    either.
    """
    if (job_dir / owner.adoption_marker()).exists():
        return False
    lease = read_lease(job_dir)
    return lease is not None and not lease.released and lease.owner.same_process(owner)


def server_time(folder: Path, owner: Owner) -> float:
    """The file server's clock now: the modification time of a probe file written just now.

    The probe is one small file per machine in ``folder`` (the root's state folder), rewritten
    in place; on a local disk this is the local clock.
    """
    probe = folder / fsio.fit_name(f"clock-{owner.host_id or owner.host}")
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, b"\n")
        return os.fstat(fd).st_mtime
    finally:
        os.close(fd)


def release_lease(job_dir: Path, owner: Owner, now: float | None = None) -> None:
    """Give a job up for recovery while this process lives on (it could not close the job)."""
    lease = Lease(owner, time.time() if now is None else now, released=True)
    fsio.write_json(job_dir / LEASE_FILE, lease.to_dict())


def read_lease(job_dir: Path) -> Lease | None:
    """The lease, or None when there is none or it cannot be read (a crash mid-claim)."""
    path = job_dir / LEASE_FILE
    try:
        with open(path, encoding="utf-8") as f:
            written = os.fstat(f.fileno()).st_mtime
            return Lease.from_dict(json.loads(f.read()), written)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def owner_is_gone(lease: Lease | None, *, lease_timeout: float, server_now: float) -> bool:
    """Whether a job with this lease may be recovered by someone else.

    ``server_now`` is ``server_time`` of the same file server: another machine's owner is
    gone when its lease file was not rewritten for ``lease_timeout`` by that clock.
    """
    if lease is None or lease.released:
        return True
    if lease.owner.on_this_host():
        return not lease.owner.is_alive()
    return server_now - lease.written > lease_timeout
