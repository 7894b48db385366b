"""Where Prometheus finds this daemon: a file-based service-discovery file per process.

Several daemons and cluster workers may run on one host and one root, each on its own port
(``[metrics] port = 0`` or ``--metrics-port 0`` picks a free one; a cluster worker picks one
unless told). Each writes ``<root>/.sharpmld/targets/daemon-HOST-PID.json`` (a worker:
``worker-HOSTID.PID.json``) in the format of Prometheus's
``file_sd_configs`` (a list of ``{"targets": [...], "labels": {...}}``), so one scrape job
with ``files: [<root>/.sharpmld/targets/*.json]`` follows them as they come and go. The file
goes at stop; one left by a daemon killed outright goes with its status file (``status``
decides whether a daemon is gone; a discovery file without its status file is stale). A
worker's file carries no ``host`` label: its series carry their own (``worker_metrics``).
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from sharpmld.core import fsio
from sharpmld.queue.cluster_workers import WORKERS_DIR
from sharpmld.queue.layout import DAEMON_STATUS_PREFIX

TARGETS_DIR = "targets"
WORKER_PREFIX = "worker-"
ANY_ADDRESS = ("", "0.0.0.0", "::")


def daemon_target_name() -> str:
    """This daemon's discovery file name: its status file's name."""
    return f"{DAEMON_STATUS_PREFIX}{socket.gethostname()}-{os.getpid()}.json"


def worker_target_name(host_id: str, pid: int) -> str:
    """A cluster worker's discovery file name, after its status file ``workers/ID.PID.json``."""
    return f"{WORKER_PREFIX}{host_id}.{pid}.json"


def targets_path(state_dir: Path, name: str | None = None) -> Path:
    """A process's discovery file (by default this daemon's)."""
    return state_dir / TARGETS_DIR / (name or daemon_target_name())


def write_target(
    state_dir: Path,
    host: str,
    port: int,
    *,
    root: Path,
    name: str | None = None,
    labels: dict[str, str] | None = None,
) -> Path:
    """Publish ``host:port`` for Prometheus; an any-address bind is published by host name.
    ``labels`` default to the daemon's: ``host`` and ``root``."""
    address = socket.gethostname() if host in ANY_ADDRESS else host
    if ":" in address:  # an IPv6 literal needs brackets in a target
        address = f"[{address}]"
    path = targets_path(state_dir, name)
    path.parent.mkdir(exist_ok=True)
    if labels is None:
        labels = {"host": socket.gethostname(), "root": str(root)}
    fsio.write_json(path, [{"targets": [f"{address}:{port}"], "labels": labels}])
    return path


def remove_target(state_dir: Path, name: str | None = None) -> None:
    with contextlib.suppress(OSError):
        os.unlink(targets_path(state_dir, name))


def _status_of(state_dir: Path, name: str) -> Path:
    """The status file whose presence says the process behind a discovery file is alive."""
    if name.startswith(WORKER_PREFIX):
        return state_dir / WORKERS_DIR / name.removeprefix(WORKER_PREFIX)
    return state_dir / name


def sweep_targets(state_dir: Path) -> list[str]:
    """Remove discovery files whose process's status file is gone; returns the names removed."""
    removed: list[str] = []
    try:
        names = os.listdir(state_dir / TARGETS_DIR)
    except OSError:
        return removed
    for name in names:
        if fsio.is_temp_name(name) or _status_of(state_dir, name).exists():
            continue
        with contextlib.suppress(OSError):
            os.unlink(state_dir / TARGETS_DIR / name)
            removed.append(name)
    return removed
