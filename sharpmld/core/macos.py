"""macOS privacy protection (TCC): where it blocks a background process, and the fix, said once.

A daemon started by launchd gets EPERM, with no prompt, in Desktop, Documents, Downloads and
on external volumes unless its python has Full Disk Access. Both the installer's warning and
the daemon's start-up access check give the same advice from here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PROTECTED_FOLDERS = ("Desktop", "Documents", "Downloads")
"""Folders of the home directory that TCC guards (external volumes under /Volumes as well)."""


def is_protected(path: Path) -> bool:
    """Whether ``path`` lies in a folder TCC guards: Desktop, Documents, Downloads, /Volumes."""
    path = path.absolute()
    guarded = [Path.home() / name for name in PROTECTED_FOLDERS] + [Path("/Volumes")]
    return any(path == p or p in path.parents for p in guarded)


def full_disk_access_advice() -> str:
    """The fix, as one clause: which setting, and the real binary to add (not the venv link)."""
    return (
        "give the daemon's python Full Disk Access (System Settings → Privacy & Security → Full "
        f"Disk Access, add {os.path.realpath(sys.executable)}, the real binary behind the venv's "
        "python symlink) and restart sharpmld, or keep the root outside Desktop, Documents, "
        "Downloads and external volumes (the default ~/SharpML is outside them)"
    )
