"""Retention: finished jobs older than their configured age are removed.

Only ``done/`` and ``failed/`` are ever swept; ``inbox/`` and ``working/`` hold work that is
not finished and are never touched here. A job's age is its folder's modification time,
which the final rename carries over from the moment its last file was written.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from sharpmld.queue.jobid import is_job_id
from sharpmld.queue.layout import Layout

DAY = 86400.0


def sweep(layout: Layout, *, done_days: float, failed_days: float, now: float | None = None) -> list[Path]:
    """Remove expired jobs; returns what was removed. A zero age keeps jobs forever."""
    current = time.time() if now is None else now
    removed: list[Path] = []
    for folder, days in ((layout.done, done_days), (layout.failed, failed_days)):
        if days <= 0:
            continue
        cutoff = current - days * DAY
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        for entry in entries:
            if not is_job_id(entry.name) or not entry.is_dir(follow_symlinks=False):
                continue
            try:
                if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                    continue
            except FileNotFoundError:
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    return removed
