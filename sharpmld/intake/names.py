"""Name rules: which entries are clutter, which are still arriving, which is ours.

The scanner, the inventory, ``sharpmld status`` and ``sharpmld submit`` all ask the same two
questions of a name; answering them here keeps the daemon and the command line in agreement.
"""

from __future__ import annotations

import re

from sharpmld.core.macos import icloud_original

JOB_TOML = "job.toml"
"""The optional per-job settings file at the top of a dropped folder; never an input image."""

JUNK_NAMES = frozenset({"__macosx", "thumbs.db", "desktop.ini", "icon\r"})
"""Names (compared case-insensitively) that operating systems leave behind; never inputs."""

IN_PROGRESS_SUFFIXES = (".part", ".crdownload", ".download", ".tmp", ".partial")
"""Endings used by browsers and copy tools while a file is still arriving."""

_RSYNC_TEMP = re.compile(r"\.[^/]+\.[A-Za-z0-9]{6}")


def is_junk(name: str) -> bool:
    """Whether ``name`` is hidden or system clutter (dot-files, AppleDouble, ``__MACOSX``)."""
    return name.startswith(".") or name.casefold() in JUNK_NAMES


def is_in_progress(name: str) -> bool:
    """Whether ``name`` looks like a file still being copied or downloaded (rsync temp, .part).

    An iCloud placeholder ``.IMG_1.HEIC.icloud`` has the shape of an rsync temp name (a dot,
    a name, a dot, six letters) but is not a copy in progress: it is a file iCloud evicted,
    which is rejected as not downloaded, not waited for.
    """
    if icloud_original(name) is not None:
        return False
    return _RSYNC_TEMP.fullmatch(name) is not None or name.casefold().endswith(IN_PROGRESS_SUFFIXES)
