"""The daemon's start-up access check: which folder lacks which permission, and the fix.

On macOS a daemon meets privacy protection (TCC) in Desktop, Documents, Downloads, iCloud
Drive and on external volumes: reads and writes fail with EPERM and no prompt, so the message names Full
Disk Access and the exact binary to give it to.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import stat
import sys
from pathlib import Path

from sharpmld.core import fsio
from sharpmld.core.errors import SharpmldError
from sharpmld.core.macos import full_disk_access_advice
from sharpmld.core.units import DISK_FULL_ERRNOS
from sharpmld.queue.layout import STATES


def _advice(folder: Path, exc: OSError, macos: bool) -> str:
    if exc.errno not in (errno.EPERM, errno.EACCES):
        return ""
    advice = f" Check the folder's owner and permissions (ls -ld {shlex.quote(str(folder))})"
    if not macos:
        return advice + f"; sharpmld runs as uid {os.getuid()}."
    return advice + (
        f"; if they are fine, macOS privacy protection (TCC) is blocking it: {full_disk_access_advice()}."
    )


def _describe(what: str, folder: Path, exc: OSError, macos: bool) -> str:
    code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return f"cannot {what} {folder}: {exc.strerror or exc} ({code}).{_advice(folder, exc, macos)}"


def _try_write(folder: Path) -> None:
    """Create and delete a hidden temp file (a name recovery sweeps, the scanner ignores)."""
    probe = fsio.temp_name_for(folder / "access-probe")
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    os.unlink(probe)


def _probe(folder: Path, macos: bool) -> tuple[str | None, bool]:
    """(a message when ``folder`` cannot be seen, listed or written, whether it was listed).

    Raises FileNotFoundError for a folder that does not exist.
    """
    try:
        mode = os.stat(folder).st_mode
    except FileNotFoundError:
        raise
    except OSError as exc:
        return _describe("see", folder, exc, macos), False
    if not stat.S_ISDIR(mode):
        return f"cannot use {folder}: it is not a folder.", False
    try:
        os.listdir(folder)
    except OSError as exc:
        return _describe("list", folder, exc, macos), False
    try:
        _try_write(folder)
    except OSError as exc:
        if exc.errno in DISK_FULL_ERRNOS:
            return None, True  # not a permission: the daemon's low-disk guard handles it
        return _describe("create files in", folder, exc, macos), True
    return None, True


def probe_access(root: Path, *, macos: bool | None = None) -> list[str]:
    """Try to list, and to create and delete a file in, the root and each state folder.

    Returns one message per failure, naming the folder, the operation and the fix (on macOS,
    Full Disk Access for EPERM/EACCES). Folders that do not exist yet are not failures, since
    the daemon creates them; for a missing root, its nearest existing parent must be writable.
    """
    mac = sys.platform == "darwin" if macos is None else macos
    root = root.absolute()
    try:
        message, listed = _probe(root, mac)
    except FileNotFoundError:
        parent = next((p for p in root.parents if os.path.lexists(p)), Path(root.anchor))
        try:
            _try_write(parent)
        except OSError as exc:
            return [_describe(f"create {root} in", parent, exc, mac)]
        return []
    problems = [message] if message else []
    if not listed:
        return problems  # every folder inside would fail for the same reason
    for state in STATES:
        with contextlib.suppress(FileNotFoundError):
            message, _ = _probe(root / state, mac)
            if message:
                problems.append(message)
    return problems


def require_access(root: Path) -> None:
    """Raise a SharpmldError listing every access problem ``probe_access`` finds."""
    problems = probe_access(root)
    if problems:
        raise SharpmldError(
            f"cannot use the folders under {root}:\n" + "\n".join(f"  - {p}" for p in problems)
        )
