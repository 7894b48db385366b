"""What macOS does to files and processes that the daemon must know: privacy protection (TCC) and
iCloud Drive placeholders.

TCC: where it blocks a background process, and the fix, said once.

A daemon started by launchd gets EPERM, with no prompt, in Desktop, Documents, Downloads,
iCloud Drive and on external volumes unless the binary TCC checks has Full Disk Access. The
installer's refusal, and the daemon's start-up access check, take their words from here.

The binary TCC checks is not always the one ``realpath(sys.executable)`` names. The python.org,
Homebrew and Command Line Tools Pythons are framework builds: their
``Python*.framework/Versions/X.Y/bin/pythonX.Y`` is a small launcher that execs
``Versions/X.Y/Resources/Python.app/Contents/MacOS/Python`` (CPython's ``Mac/Tools/pythonw.c``
and the framework install rules in ``Mac/Makefile.in``), and that app is what Full Disk Access
must list. No Mac runs these tests: the layouts are rebuilt in temp folders from those sources.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

PROTECTED_FOLDERS = ("Desktop", "Documents", "Downloads", "Library/Mobile Documents")
"""Folders of the home directory that TCC guards; ``Library/Mobile Documents`` is iCloud Drive."""

PROTECTED_VOLUMES = Path("/Volumes")
"""Where external, removable and network volumes are mounted; TCC guards them too."""

PROTECTED_NAMES = "Desktop, Documents, Downloads, iCloud Drive and external volumes"


def is_protected(path: Path) -> bool:
    """Whether ``path`` lies in a folder TCC guards (home folders above, or under /Volumes)."""
    path = path.absolute()
    guarded = [Path.home() / name for name in PROTECTED_FOLDERS] + [PROTECTED_VOLUMES]
    return any(path == p or p in path.parents for p in guarded)


@dataclass(frozen=True)
class TccBinary:
    """The executable TCC attributes a python's file accesses to, and the ``.app`` holding it."""

    binary: str
    app: str | None


def _framework_app(real: Path) -> Path | None:
    """``…/Versions/X.Y/Resources/Python.app`` for a framework build's ``…/Versions/X.Y/bin/python``."""
    if real.parent.name != "bin":
        return None
    app = real.parent.parent / "Resources" / "Python.app"
    return app if (app / "Contents" / "MacOS" / "Python").is_file() else None


def _enclosing_app(path: Path) -> Path | None:
    return next((p for p in path.parents if p.suffix == ".app"), None)


def tcc_binary(python: str) -> TccBinary:
    """What TCC sees running ``python``, worked out from the interpreter's layout on disk."""
    real = Path(os.path.realpath(python))
    app = _framework_app(real)
    if app is not None:
        return TccBinary(str(app / "Contents" / "MacOS" / "Python"), str(app))
    enclosing = _enclosing_app(real)
    return TccBinary(str(real), str(enclosing) if enclosing else None)


def running_tcc_binary() -> TccBinary:
    """What TCC sees running this process: the kernel's executable path, past any launcher."""
    import psutil  # here: `sharpmld launchd print` must work from a wheel installed alone

    try:
        exe = psutil.Process().exe()
    except (psutil.Error, OSError):
        exe = ""
    return tcc_binary(exe or sys.executable)


def full_disk_access_advice(seen: TccBinary | None = None) -> str:
    """The fix, as one clause: which setting, and what to add (this process's binary by default)."""
    seen = seen or running_tcc_binary()
    if seen.app:
        what = f"{seen.app} (the app whose {seen.binary} runs your python; that is what macOS checks)"
    else:
        what = f"{seen.binary}, the real binary behind the venv's python symlink"
    return (
        "give the daemon's python Full Disk Access (System Settings → Privacy & Security → Full "
        f"Disk Access, add {what}; ⌘⇧G in the file dialog types a path) and restart sharpmld, "
        f"or keep the root outside {PROTECTED_NAMES} (the default ~/SharpML is outside them)"
    )


ICLOUD_SUFFIX = ".icloud"
"""iCloud Drive's "Optimise Mac Storage" evicts a file by replacing ``name`` with a small
hidden plist named ``.name.icloud`` (Apple's iCloud Drive documentation: the file stays listed
in Finder with a cloud icon until it is downloaded again)."""


def icloud_original(name: str) -> str | None:
    """The real file name behind an iCloud placeholder ``.name.icloud``; None for other names."""
    if name.startswith(".") and name.endswith(ICLOUD_SUFFIX):
        original = name[1 : -len(ICLOUD_SUFFIX)]
        return original or None
    return None
