"""Resolving a URL's path inside the root without ever following a symlink out of it.

Job and photo names come from strangers: a symlink dropped into the inbox must not make
``/files/…`` serve ``/etc/passwd``. Every component is checked with ``lstat``, so no link at
all is followed, and ``..`` or an absolute part is refused before touching the disk.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sharpmld.queue.layout import STATES


def resolve_file(root: Path, relative: str) -> Path | None:
    """The regular file at ``root/relative``, or None if it is missing, outside, or behind a link."""
    parts = relative.split("/")
    if not parts or parts[0] not in STATES:
        return None
    if any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts):
        return None
    path = root
    for i, part in enumerate(parts):
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            return None
        last = i == len(parts) - 1
        if (not last and not stat.S_ISDIR(mode)) or (last and not stat.S_ISREG(mode)):
            return None
    return path
