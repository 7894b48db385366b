"""What macOS does to files and processes that the daemon must know: privacy protection (TCC),
iCloud Drive placeholders, and Finder's copy-in-progress markers.

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

Finder's copy in progress: while Finder copies a file it sets the file's creation date to
``kMagicBusyCreationDate`` and its Finder type/creator to ``brok``/``MACS`` (Apple's File
Manager reference, Files.h),
and clears both when the copy ends; a cancelled copy can leave the partial file under its final
name with the markers still on it. The type and creator are the first 8 bytes of the 32-byte
``com.apple.FinderInfo`` extended attribute; on file systems without extended attributes
(FAT, exFAT, SMB shares) Finder keeps them in an AppleDouble ``._name`` file beside it
(RFC 1740, AppleSingle/AppleDouble: entry id 9 is Finder Info).

No Mac runs the tests: the AppleDouble file is read from disk everywhere, and the birth time
and the xattr come through :class:`FinderMarks`, which tests replace with a fake that follows
the documents above.
"""

from __future__ import annotations

import datetime
import math
import os
import struct
import sys
from collections.abc import Callable
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


BUSY_CREATION_DATE = int(datetime.datetime(1946, 2, 14, 8, 34, 56, tzinfo=datetime.UTC).timestamp())
"""``kMagicBusyCreationDate`` as a Unix time (-753549904): 1946-02-14 08:34:56 UTC."""

BUSY_TYPE, BUSY_CREATOR = b"brok", b"MACS"
FINDER_INFO_XATTR = "com.apple.FinderInfo"

APPLEDOUBLE_MAGIC, APPLEDOUBLE_VERSION = 0x00051607, 0x00020000
FINDER_INFO_ENTRY = 9
_HEADER = struct.Struct(">II16sH")  # magic, version, filler, number of entries (RFC 1740)
_ENTRY = struct.Struct(">III")  # entry id, offset, length
APPLEDOUBLE_READ = 4096
"""An AppleDouble header and its Finder Info sit in its first bytes; never read more."""


def _st_birthtime(path: str) -> float | None:
    try:
        return getattr(os.lstat(path), "st_birthtime", None)  # macOS and BSDs only
    except OSError:
        return None


def _xattr_finder_info(path: str) -> bytes | None:
    getxattr = getattr(os, "getxattr", None)  # Linux only in the standard library
    if getxattr is None:
        return None
    try:
        value: bytes = getxattr(path, FINDER_INFO_XATTR, follow_symlinks=False)
    except OSError:  # no such attribute, or a name this OS does not allow
        return None
    return value


@dataclass(frozen=True)
class FinderMarks:
    """Where the birth time and the FinderInfo xattr come from; the seam tests replace."""

    birthtime: Callable[[str], float | None] = _st_birthtime
    finder_info: Callable[[str], bytes | None] = _xattr_finder_info


def _is_busy_info(info: bytes | None) -> bool:
    return info is not None and info[:4] == BUSY_TYPE and info[4:8] == BUSY_CREATOR


def appledouble_finder_info(data: bytes) -> bytes | None:
    """The Finder Info entry of an AppleDouble file's bytes; None if it is not one or has none."""
    if len(data) < _HEADER.size:
        return None
    magic, version, _filler, count = _HEADER.unpack_from(data)
    if magic != APPLEDOUBLE_MAGIC or version != APPLEDOUBLE_VERSION:
        return None
    for i in range(count):
        at = _HEADER.size + i * _ENTRY.size
        if at + _ENTRY.size > len(data):
            return None
        entry_id, offset, length = _ENTRY.unpack_from(data, at)
        if entry_id == FINDER_INFO_ENTRY:
            return data[offset : offset + length] if offset + length <= len(data) else None
    return None


def _read_appledouble(path: Path) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        return os.read(fd, APPLEDOUBLE_READ)
    except OSError:
        return None
    finally:
        os.close(fd)


def finder_is_copying(path: Path, marks: FinderMarks | None = None) -> bool:
    """Whether Finder's busy markers are on ``path``: busy birth time, or brok/MACS.

    The ``._name`` AppleDouble beside it is read only when it exists, so the usual cost is one
    birth-time look-up (already in the stat on macOS) and one xattr call where the OS has one.
    """
    marks = marks or FinderMarks()
    where = os.fspath(path)
    born = marks.birthtime(where)
    if born is not None and math.floor(born) == BUSY_CREATION_DATE:  # int() rounds up below 0
        return True
    if _is_busy_info(marks.finder_info(where)):
        return True
    double = path.with_name(f"._{path.name}")
    if os.path.lexists(double):
        data = _read_appledouble(double)
        return data is not None and _is_busy_info(appledouble_finder_info(data))
    return False
