"""Crash-safe file writing: temp name, fsync, rename, fsync the folder.

Every file a person or another process reads (outputs, result.json, state) goes through
here, so a crash at any instant leaves either the old file, the new one, or a temp name that
recovery removes -- never a half-written file under its real name.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import IO, Any

try:
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - Windows has no fcntl
    _fcntl = None  # type: ignore[assignment]

TEMP_PREFIX = ".sharpmld-tmp-"


MAX_NAME_BYTES = 255


def fit_name(name: str, room: int = MAX_NAME_BYTES) -> str:
    """``name`` cut to ``room`` bytes as the filesystem counts them (never mid-character)."""
    raw = os.fsencode(name)
    if len(raw) <= room:
        return name
    cut = raw[:room]
    while cut:
        try:
            cut.decode("utf-8")
            break
        except UnicodeDecodeError as exc:
            if exc.start == 0 and exc.reason != "unexpected end of data":
                break  # not UTF-8 at all: keep the bytes as they are
            cut = cut[:-1]
    return os.fsdecode(cut)


def temp_name_for(path: Path, tag: str = "") -> Path:
    """A unique hidden sibling of ``path``; recognisable so that recovery can sweep it.

    ``tag`` (a writer's ``Owner.tag()``) goes into the name where nothing else records who
    writes there, so that a sweep can tell a killed writer's leftover from a write under way.
    """
    prefix = f"{TEMP_PREFIX}{secrets.token_hex(4)}-" + (f"{tag}-" if tag else "")
    return path.with_name(prefix + fit_name(path.name, MAX_NAME_BYTES - len(prefix)))


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is one of our temp files (left over by a crash if seen at rest)."""
    return name.startswith(TEMP_PREFIX)


def full_fsync(fd: int, fcntl_mod: ModuleType | None = _fcntl) -> None:
    """Push ``fd``'s data to stable storage, not just to the drive's cache.

    On macOS fsync(2) only hands the data to the drive, which may keep it in its cache across
    a power cut; Apple's fsync(2) man page says to use ``fcntl(fd, F_FULLFSYNC)`` for that.
    Some file systems (network shares, exFAT on some drives) refuse F_FULLFSYNC, so a failure
    falls back to plain fsync. Linux has no F_FULLFSYNC: its fsync already flushes the cache.
    """
    op = getattr(fcntl_mod, "F_FULLFSYNC", None) if fcntl_mod is not None else None
    if op is not None and fcntl_mod is not None:
        try:
            fcntl_mod.fcntl(fd, op)
            return
        except OSError:
            pass
    os.fsync(fd)


def fsync_dir(path: Path) -> None:
    """Make a rename or create inside ``path`` durable; a no-op where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        full_fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


LINK_UNSUPPORTED = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK, 45})
"""Errnos meaning "this file system makes no hard links": exFAT/FAT and SMB on macOS give
EOPNOTSUPP (45 there, see intro(2)); Linux gives EPERM (link(2): "the file system containing
oldpath and newpath does not support the creation of hard links") or EOPNOTSUPP."""

LinkFn = Callable[[Path, Path], None]


def hard_link(source: Path, target: Path) -> None:
    """link(2) that does not follow a symlink source (the link itself is moved)."""
    os.link(source, target, follow_symlinks=False)


def link_unsupported(exc: BaseException) -> bool:
    """Whether ``exc`` from link(2) means the file system has no hard links (not a real error)."""
    if isinstance(exc, NotImplementedError):
        return True
    return (
        isinstance(exc, OSError) and not isinstance(exc, FileExistsError) and (exc.errno in LINK_UNSUPPORTED)
    )


def move_file_exclusive(source: Path, target: Path, link: LinkFn = hard_link) -> None:
    """Move the file ``source`` to ``target``; FileExistsError if ``target`` exists.

    A hard link fails when the name is taken, so link-then-unlink never replaces anything.
    Where links are not supported (exFAT, FAT, some shares) the name is first reserved with
    an exclusive create, then ``source`` is renamed over that empty file of our own: still
    never someone else's file replaced, and the original is never lost (at worst a crash
    leaves the empty reservation beside it).
    """
    try:
        link(source, target)
    except OSError as exc:
        if not link_unsupported(exc):
            raise
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        _replace_or_remove(source, target, remove=target)
        return
    os.unlink(source)


def copy_durably(source: Path, target: Path) -> None:
    """Copy ``source`` to a new file ``target`` and fsync it before anyone sees the rename."""
    with open(source, "rb") as src, open(target, "xb") as dst:
        shutil.copyfileobj(src, dst)
        dst.flush()
        full_fsync(dst.fileno())


def link_or_copy(source: Path, target: Path, link: LinkFn = hard_link) -> None:
    """Put ``source``'s bytes at ``target`` (replacing it), keeping ``source``.

    A hard link when the file system has them, else a durable copy; either way through a temp
    name so that ``target`` is never half-written.
    """
    tmp = temp_name_for(target)
    try:
        link(source, tmp)
    except OSError:  # no hard links here, another device, or links refused: copy instead
        copy_durably(source, tmp)
    _replace_or_remove(tmp, target, remove=tmp)


def _replace_or_remove(source: Path, target: Path, *, remove: Path) -> None:
    """Rename ``source`` over ``target`` durably; if that fails, remove ``remove`` (our own
    temp file or reservation) so that nothing of ours is left behind."""
    try:
        os.replace(source, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(remove)
        raise
    fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_writer(path: Path, mode: str = "wb", *, tag: str = "") -> Iterator[IO[Any]]:
    """Open a temp file beside ``path``; on success fsync it and rename it into place.

    On any exception the temp file is removed and ``path`` is untouched (a kill leaves it:
    ``tag`` is as for ``temp_name_for``).
    """
    tmp = temp_name_for(path, tag)
    f = open(tmp, mode)  # noqa: SIM115 - closed below on every path
    try:
        yield f
        f.flush()
        full_fsync(f.fileno())
        f.close()
        os.replace(tmp, path)
    except BaseException:
        f.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def write_bytes(path: Path, data: bytes | memoryview, *, tag: str = "") -> None:
    """Write ``data`` to ``path`` atomically and durably."""
    with atomic_writer(path, tag=tag) as f:
        f.write(data)


def write_text(path: Path, text: str, *, tag: str = "") -> None:
    """Write UTF-8 ``text`` to ``path`` atomically and durably (undecodable bytes escaped)."""
    write_bytes(path, text.encode("utf-8", "backslashreplace"), tag=tag)


def to_json(obj: Any, indent: int | None = 2) -> str:
    """JSON that is valid UTF-8 even for file names that are not (their bytes arrive as
    surrogates): those documents fall back to ``\\u`` escapes, which read back exactly."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False, default=str)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(obj, indent=indent, ensure_ascii=True, default=str)
    return text


def write_json(path: Path, obj: Any, *, tag: str = "") -> None:
    """Write ``obj`` as indented JSON atomically and durably."""
    write_text(path, to_json(obj) + "\n", tag=tag)
