"""The cluster workers as any process on the shared root sees them: their status files.

Each ``sharpmld worker --cluster`` keeps ``<root>/.sharpmld/workers/<host id>.<pid>.json``
(written by ``sharpmld.clusterworker.status``), rewriting it at least every
``REFRESH_SECONDS``; ``sharpmld status`` lists them and the intake counts the connected ones
by host for its metrics. A worker killed outright leaves its file behind, so "connected"
means written within ``STALE_SECONDS``, by the file's own ``updated`` wall-clock time.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

WORKERS_DIR = "workers"
REFRESH_SECONDS = 10.0  # a worker rewrites its file at least this often
STALE_SECONDS = 3 * REFRESH_SECONDS  # past this, a file is a worker that is gone


def read_workers(state_dir: Path) -> list[dict[str, Any]]:
    """Every worker status file that reads as JSON, sorted by host then pid."""
    folder = state_dir / WORKERS_DIR
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith(".json") and not n.startswith("."))
    except OSError:
        return []
    found = []
    for name in names:
        try:
            data = json.loads((folder / name).read_text("utf-8"))
        except (OSError, ValueError):
            continue  # vanished (a clean stop) or being replaced: the next read sees it
        if isinstance(data, dict):
            found.append(data)
    return sorted(found, key=lambda w: (str(w.get("host", "")), int(w.get("pid") or 0)))


def connected_by_host(workers: list[dict[str, Any]], now_wall: float) -> dict[str, int]:
    """How many workers per host wrote their file within ``STALE_SECONDS`` of ``now_wall``."""
    fresh: Counter[str] = Counter()
    for w in workers:
        try:
            updated = float(w.get("updated") or 0.0)
        except (TypeError, ValueError):
            continue
        if now_wall - updated <= STALE_SECONDS:
            fresh[str(w.get("host") or w.get("host_id") or "unknown")] += 1
    return dict(fresh)
