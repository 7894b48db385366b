"""Look at a job's files without decoding them: names, sizes, types and magic bytes only.

This runs inside the daemon, which must never be crashed or hung by what people drop in the
inbox. So nothing here decodes an image (no PIL import: decoding untrusted content is the
worker subprocess's job), nothing follows a symbolic link, and nothing opens a FIFO, socket or
device. The walk is done relative to open directory descriptors, so swapping a folder for a
symlink halfway through cannot lead it outside the job.
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import stat
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

from sharpmld.core.errors import (
    DecodeFailed,
    EmptyFile,
    FileTooLarge,
    JobTooLarge,
    NotRegularFile,
    SharpmldError,
    TooManyEntries,
    TooManyImages,
    UnsupportedType,
    format_advice,
)

BYTES_PER_MB = 1024 * 1024
"""How the ``*_mb`` limits convert to bytes; callers should use the same constant."""

JOB_SETTINGS_NAME = "job.toml"
HEAD_BYTES = 32
SIGNATURE_MAX_DEPTH = 64
"""tree_signature does not enter folders this deep (bounds recursion and descriptors)."""

JUNK_NAMES = frozenset({"__macosx", "thumbs.db", "desktop.ini", "icon\r"})
"""Names (compared case-insensitively) that operating systems leave behind; never inputs."""

IN_PROGRESS_SUFFIXES = (".part", ".crdownload", ".download", ".tmp", ".partial")
"""Endings used by browsers and copy tools while a file is still arriving."""

_RSYNC_TEMP = re.compile(r"\.[^/]+\.[A-Za-z0-9]{6}")

HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
"""ISO-BMFF brands of HEIC/HEIF stills and sequences that the HEVC decoder handles."""

AVIF_BRANDS = frozenset({b"avif", b"avis"})
"""AVIF files also carry ``mif1``; these brands mark them so they are refused, not mistaken."""

VIDEO_BRANDS = frozenset(
    {
        b"isom",
        b"iso2",
        b"iso4",
        b"iso5",
        b"iso6",
        b"mp41",
        b"mp42",
        b"avc1",
        b"qt  ",
        b"M4V ",
        b"M4VP",
        b"MSNV",
        b"dash",
        b"3gp4",
        b"3gp5",
        b"3gp6",
    }
)
"""ISO-BMFF brands of MP4 and QuickTime (MOV) movies, checked only after HEIF and AVIF."""

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = _OPEN_FLAGS | getattr(os, "O_DIRECTORY", 0)

# Magic bytes of things people drop by mistake, to say what the file really is.
_OTHER_KINDS = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"#!", "a script"),
    (b"GIF8", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"BM", "a BMP image"),
)


def is_junk(name: str) -> bool:
    """Whether ``name`` is system clutter (dot-files, AppleDouble, ``__MACOSX``, Thumbs.db)."""
    return name.startswith(".") or name.casefold() in JUNK_NAMES


def is_in_progress(name: str) -> bool:
    """Whether ``name`` looks like a file still being copied or downloaded (rsync temp, .part)."""
    return _RSYNC_TEMP.fullmatch(name) is not None or name.casefold().endswith(IN_PROGRESS_SUFFIXES)


def sniff(head: bytes) -> str | None:
    """The kind the first bytes announce ("jpeg", "png", "heif", "video"), or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        box_end = min(int.from_bytes(head[0:4], "big"), len(head))
        brands = {head[8:12]}
        brands.update(head[i : i + 4] for i in range(16, box_end - 3, 4))
        if brands & AVIF_BRANDS:
            return None
        if brands & HEIF_BRANDS:
            return "heif"
        if brands & VIDEO_BRANDS:
            return "video"
    if len(head) >= 8 and head[4:8] in (b"moov", b"wide", b"mdat") and head[:2] == b"\x00\x00":
        return "video"  # QuickTime files written without an ftyp box
    return None


def _describe_other(head: bytes) -> str | None:
    for magic, what in _OTHER_KINDS:
        if head.startswith(magic):
            return what
    if len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in AVIF_BRANDS:
        return "an AVIF image"
    return None


@dataclass
class Candidate:
    """A file whose magic bytes say it is an image we accept; the worker decodes it later."""

    rel: str
    path: Path
    size: int
    kind: str


@dataclass
class Rejection:
    """One file that cannot be used, with its stable code and a message for people."""

    rel: str
    code: str
    message: str


@dataclass
class Inventory:
    """What a job's input folder holds, sorted by relative path."""

    images: list[Candidate] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    total_bytes: int = 0


@dataclass(frozen=True)
class TreeSignature:
    """A cheap, comparable summary of a job's tree; equal signatures mean nothing moved."""

    entries: tuple[tuple[str, str, int, int], ...]
    in_progress: bool
    truncated: bool


def _mb(n: int) -> str:
    value = n / BYTES_PER_MB
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def _kind_of(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def _walk(
    dir_fd: int, prefix: str, depth: int, descend_below: int, cap: int
) -> Generator[tuple[str, str, os.stat_result, int, int], None, None]:
    """Yield ``(rel, name, lstat, parent_fd, depth)`` for each entry, without following links.

    Junk and in-progress folders, and folders at ``descend_below`` or deeper, are yielded but
    not entered (this also bounds recursion and open descriptors). Subfolders are opened with
    ``O_NOFOLLOW`` relative to their parent's descriptor, so the walk cannot leave the tree.
    At most ``cap`` entries of one folder are read: past that the caller's limit trips anyway.
    """
    with os.scandir(dir_fd) as it:
        entries = sorted(itertools.islice(it, cap), key=lambda e: e.name)
    for entry in entries:
        rel = f"{prefix}{entry.name}"
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        yield rel, entry.name, st, dir_fd, depth
        if (
            stat.S_ISDIR(st.st_mode)
            and depth < descend_below
            and not (is_junk(entry.name) or is_in_progress(entry.name))
        ):
            try:
                sub = os.open(entry.name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError:
                continue  # vanished or swapped for a non-folder since the scan
            try:
                yield from _walk(sub, f"{rel}/", depth + 1, descend_below, cap)
            finally:
                os.close(sub)


def _read_head(dir_fd: int | None, name: str, limit: int) -> tuple[bytes, int] | SharpmldError:
    """Open ``name`` safely and read its first bytes; return ``(head, size)`` or the rejection.

    ``O_NOFOLLOW`` refuses a symlink, ``O_NONBLOCK`` keeps a FIFO swapped in after the lstat
    from blocking the open, and ``fstat`` confirms that what was opened is a regular file.
    """
    try:
        fd = os.open(name, _OPEN_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            return NotRegularFile(format_advice(NotRegularFile))
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return NotRegularFile(format_advice(NotRegularFile))
        if st.st_size == 0:
            return EmptyFile(format_advice(EmptyFile))
        if st.st_size > limit:
            return FileTooLarge(format_advice(FileTooLarge, max_file_mb=_mb(limit)))
        return os.read(fd, HEAD_BYTES), st.st_size
    finally:
        os.close(fd)


def _classify(
    rel: str,
    name: str,
    st: os.stat_result,
    dir_fd: int | None,
    root_path: Path,
    limit: int,
    video_limit: int = 0,
) -> Candidate | Rejection | None:
    """Judge one non-junk entry; None means it vanished and is simply left out."""
    if not stat.S_ISREG(st.st_mode):
        return Rejection(rel, NotRegularFile.code, format_advice(NotRegularFile))
    if st.st_size == 0:
        return Rejection(rel, EmptyFile.code, format_advice(EmptyFile))
    if st.st_size > max(limit, video_limit):
        message = format_advice(FileTooLarge, max_file_mb=_mb(limit))
        return Rejection(rel, FileTooLarge.code, message)
    try:
        got = _read_head(dir_fd, name, max(limit, video_limit))
    except FileNotFoundError:
        return None
    except OSError as exc:
        message = f"The file could not be opened ({exc.strerror or exc}). Please copy it again."
        return Rejection(rel, DecodeFailed.code, message)
    if isinstance(got, SharpmldError):
        return Rejection(rel, got.code, got.message)
    head, size = got
    kind = sniff(head)
    if kind == "video":
        if not video_limit:
            return Rejection(
                rel,
                UnsupportedType.code,
                "This file is a video and video input is "
                f"turned off ([video] enabled = false). {format_advice(UnsupportedType)}",
            )
        if size > video_limit:
            message = f"Videos must be under {_mb(video_limit)} MB each."
            return Rejection(rel, FileTooLarge.code, message)
    elif size > limit:
        return Rejection(rel, FileTooLarge.code, format_advice(FileTooLarge, max_file_mb=_mb(limit)))
    if kind is None:
        what = _describe_other(head)
        message = format_advice(UnsupportedType)
        if what:
            message = f"This file is {what}, not a photo. {message}"
        return Rejection(rel, UnsupportedType.code, message)
    return Candidate(rel, root_path / rel if dir_fd is not None else root_path, size, kind)


def inventory(
    root: Path,
    *,
    max_file_bytes: int,
    max_job_bytes: int,
    max_images: int,
    max_depth: int = 8,
    max_entries: int = 10_000,
    max_video_bytes: int = 0,
) -> Inventory:
    """List a job's usable images, per-file rejections and ignored clutter; never decode.

    Job-level limits raise (TooManyEntries, JobTooLarge, TooManyImages); per-file problems
    become Rejections so that the rest of the job goes on. A plain-file root is a one-image job.
    """
    inv = Inventory()
    root_st = os.lstat(root)
    if not stat.S_ISDIR(root_st.st_mode):
        if is_junk(root.name) or is_in_progress(root.name):
            inv.ignored.append(root.name)
            return inv
        result = _classify(root.name, str(root), root_st, None, root, max_file_bytes, max_video_bytes)
        _add(inv, result)
        return _check_job(inv, max_job_bytes, max_images)

    root_fd = os.open(root, _DIR_FLAGS)
    walk = _walk(root_fd, "", 1, max_depth + 1, max_entries + 1)
    try:
        count = 0
        for rel, name, st, dir_fd, depth in walk:
            count += 1
            if count > max_entries:
                raise TooManyEntries(format_advice(TooManyEntries), max_entries=max_entries)
            if is_junk(name) or is_in_progress(name):
                inv.ignored.append(rel)
                continue
            if depth > max_depth:
                raise TooManyEntries(format_advice(TooManyEntries), max_depth=max_depth)
            if stat.S_ISDIR(st.st_mode) or (depth == 1 and name == JOB_SETTINGS_NAME):
                continue
            _add(inv, _classify(rel, name, st, dir_fd, root, max_file_bytes, max_video_bytes))
    finally:
        walk.close()  # closes the subfolder descriptors even when a limit stopped the walk
        os.close(root_fd)
    inv.images.sort(key=lambda c: c.rel)
    inv.rejected.sort(key=lambda r: r.rel)
    inv.ignored.sort()
    return _check_job(inv, max_job_bytes, max_images)


def _add(inv: Inventory, result: Candidate | Rejection | None) -> None:
    if isinstance(result, Candidate):
        inv.images.append(result)
        inv.total_bytes += result.size
    elif isinstance(result, Rejection):
        inv.rejected.append(result)


def _check_job(inv: Inventory, max_job_bytes: int, max_images: int) -> Inventory:
    if inv.total_bytes > max_job_bytes:
        message = format_advice(JobTooLarge, max_job_mb=_mb(max_job_bytes))
        raise JobTooLarge(message, total_bytes=inv.total_bytes, max_job_bytes=max_job_bytes)
    if len(inv.images) > max_images:
        message = format_advice(TooManyImages, max_images=max_images)
        raise TooManyImages(message, images=len(inv.images), max_images=max_images)
    return inv


def tree_signature(root: Path | str, max_entries: int, st: os.stat_result | None = None) -> TreeSignature:
    """Summarise every entry under ``root`` by (rel, type, size, mtime_ns), without opening files.

    The readiness rule compares two signatures taken some seconds apart: any copy still
    running changes a size or an mtime. ``in_progress`` flags names of partial downloads;
    ``truncated`` says the walk stopped at ``max_entries`` (the job will fail on that limit).
    Junk folders are summarised as one entry (their contents do not matter). ``st``, the
    ``lstat`` of ``root`` if the caller already has it (a scan's ``DirEntry``), saves a call.
    """
    path = os.fspath(root)
    if st is None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return TreeSignature((), False, False)
    if not stat.S_ISDIR(st.st_mode):
        name = root.name if isinstance(root, Path) else os.path.basename(path)
        entry = (name, _kind_of(st.st_mode), st.st_size, st.st_mtime_ns)
        return TreeSignature((entry,), is_in_progress(name), False)
    entries: list[tuple[str, str, int, int]] = []
    in_progress = False
    truncated = False
    try:
        root_fd = os.open(path, _DIR_FLAGS)
    except OSError:
        return TreeSignature((), False, False)
    walk = _walk(root_fd, "", 1, SIGNATURE_MAX_DEPTH, max_entries + 1)
    try:
        for rel, name, entry_st, _fd, depth in walk:
            if len(entries) >= max_entries:
                truncated = True
                break
            in_progress = in_progress or is_in_progress(name)
            entries.append((rel, _kind_of(entry_st.st_mode), entry_st.st_size, entry_st.st_mtime_ns))
            if depth >= SIGNATURE_MAX_DEPTH and stat.S_ISDIR(entry_st.st_mode) and not is_junk(name):
                truncated = True
    finally:
        walk.close()
        os.close(root_fd)
    return TreeSignature(tuple(entries), in_progress, truncated)
