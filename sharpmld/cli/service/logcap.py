"""The launchd agent's log files, capped each time the daemon starts (launchd never rotates).

launchd opens ``StandardOutPath`` and ``StandardErrorPath`` itself, before the daemon runs,
with ``O_WRONLY|O_APPEND|O_CREAT`` (``job_setup_fd`` in launchd's published source, core.c),
and neither it nor newsyslog rotates them. We cap at start rather than rotate while running:
when a file has grown past ``LOG_CAP_BYTES``, its last ``LOG_CAP_BYTES`` are kept as
``NAME.1`` (temp name, fsync, rename) and the file is truncated in place. Because launchd's
descriptor appends, the daemon's next line lands at the new end; a renamed file would keep
receiving the writes instead. A single long run can still grow the file: it is capped at the
next start (a restart, a login, or launchd's restart after a crash).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from sharpmld.core import fsio

LOG_BASE_ENV = "SHARPMLD_LAUNCHD_LOG"
"""Set by the plist to ``LOG_DIR/LOG_NAME``: the agent logs to ``.log`` and ``.err.log`` there."""

LOG_CAP_BYTES = 10 * 1024 * 1024
LOG_SUFFIXES = (".log", ".err.log")


def cap(path: Path, limit: int = LOG_CAP_BYTES) -> bool:
    """Keep the tail of an oversized ``path`` as ``path.1`` and empty ``path``; whether it did."""
    try:
        size = path.stat().st_size
        if size <= limit:
            return False
        with open(path, "rb") as f:
            f.seek(size - limit)
            tail = f.read(limit)
        fsio.write_bytes(path.with_name(path.name + ".1"), tail)
        os.truncate(path, 0)
    except OSError:
        return False  # a log that cannot be capped must not stop the daemon from starting
    return True


def cap_at_start(environ: Mapping[str, str], limit: int = LOG_CAP_BYTES) -> list[Path]:
    """Cap the agent's two log files when the plist named them; the ones capped."""
    base = environ.get(LOG_BASE_ENV)
    if not base:
        return []
    return [p for p in (Path(base + s) for s in LOG_SUFFIXES) if cap(p, limit)]
