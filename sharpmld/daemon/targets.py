"""Where Prometheus finds this daemon: a file-based service-discovery file per process.

Several daemons (and later workers) may run on one host and one root, each on its own port
(``[metrics] port = 0`` or ``sharpmld run --metrics-port 0`` picks a free one). Each writes
``<root>/.sharpmld/targets/daemon-HOST-PID.json`` in the format of Prometheus's
``file_sd_configs`` (a list of ``{"targets": [...], "labels": {...}}``), so one scrape job
with ``files: [<root>/.sharpmld/targets/*.json]`` follows them as they come and go. The file
goes at stop; one left by a daemon killed outright goes with its status file (``status``
decides whether a daemon is gone; a discovery file without its status file is stale).
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from sharpmld.core import fsio
from sharpmld.queue.layout import DAEMON_STATUS_PREFIX

TARGETS_DIR = "targets"
ANY_ADDRESS = ("", "0.0.0.0", "::")


def targets_path(state_dir: Path) -> Path:
    """This process's discovery file."""
    name = f"{DAEMON_STATUS_PREFIX}{socket.gethostname()}-{os.getpid()}.json"
    return state_dir / TARGETS_DIR / name


def write_target(state_dir: Path, host: str, port: int, *, root: Path) -> Path:
    """Publish ``host:port`` for Prometheus; an any-address bind is published by host name."""
    address = socket.gethostname() if host in ANY_ADDRESS else host
    if ":" in address:  # an IPv6 literal needs brackets in a target
        address = f"[{address}]"
    path = targets_path(state_dir)
    path.parent.mkdir(exist_ok=True)
    labels = {"host": socket.gethostname(), "root": str(root)}
    fsio.write_json(path, [{"targets": [f"{address}:{port}"], "labels": labels}])
    return path


def remove_target(state_dir: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(targets_path(state_dir))


def sweep_targets(state_dir: Path) -> list[str]:
    """Remove discovery files whose daemon's status file is gone; returns the names removed."""
    removed: list[str] = []
    try:
        names = os.listdir(state_dir / TARGETS_DIR)
    except OSError:
        return removed
    for name in names:
        if fsio.is_temp_name(name) or (state_dir / name).exists():
            continue
        with contextlib.suppress(OSError):
            os.unlink(state_dir / TARGETS_DIR / name)
            removed.append(name)
    return removed
