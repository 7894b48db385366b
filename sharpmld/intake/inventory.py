"""A job's inventory: its usable images, per-file rejections and ignored clutter.

This runs inside the daemon, which must never be crashed or hung by what people drop in the
inbox. So nothing here decodes an image (no PIL import: decoding untrusted content is the
worker subprocess's job); files are judged by name, size, type and magic bytes only, reached
through the fd-relative walk.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from sharpmld.core.errors import (
    DecodeFailed,
    EmptyFile,
    FileTooLarge,
    JobTooLarge,
    NotDownloaded,
    NotRegularFile,
    PermissionDenied,
    SharpmldError,
    TooManyEntries,
    TooManyImages,
    UnsupportedType,
    format_advice,
    unsupported_message,
)
from sharpmld.core.macos import icloud_original
from sharpmld.core.units import MB
from sharpmld.core.users import effective_user
from sharpmld.intake.magic import DESCRIBE_BYTES, describe_other, sniff
from sharpmld.intake.names import JOB_TOML, is_in_progress, is_junk
from sharpmld.intake.walk import DIR_FLAGS, OPEN_FLAGS, walk


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
    settings: str | None = None  # the job.toml that was read as the job's settings, if any


def _mb(n: int) -> str:
    value = n / MB
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def _read_head(dir_fd: int | None, name: str, limit: int) -> tuple[bytes, int] | SharpmldError:
    """Open ``name`` safely and read its first bytes; return ``(head, size)`` or the rejection.

    ``O_NOFOLLOW`` refuses a symlink, ``O_NONBLOCK`` keeps a FIFO swapped in after the lstat
    from blocking the open, and ``fstat`` confirms that what was opened is a regular file.
    """
    try:
        fd = os.open(name, OPEN_FLAGS, dir_fd=dir_fd)
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
        return os.read(fd, DESCRIBE_BYTES), st.st_size
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
    except PermissionError:
        return _denied(rel, is_dir=False)
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
        return Rejection(rel, UnsupportedType.code, unsupported_message(describe_other(head, name)))
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
    settings_file: bool = True,
) -> Inventory:
    """List a job's usable images, per-file rejections and ignored clutter; never decode.

    Job-level limits raise (TooManyEntries, JobTooLarge, TooManyImages); per-file problems
    become Rejections so that the rest of the job goes on. A plain-file root is a one-image job.
    ``settings_file`` says whether a top-level ``job.toml`` is the job's settings (a dropped
    folder's) or a file that arrived on its own, which is then refused with its reason.
    """
    inv = Inventory()
    root_st = os.lstat(root)
    if not stat.S_ISDIR(root_st.st_mode):
        if is_junk(root.name) or is_in_progress(root.name):
            inv.ignored.append(root.name)
            return inv
        if root.name == JOB_TOML:
            _add(inv, _lone_job_toml(root.name))
        else:
            _add(inv, _classify(root.name, str(root), root_st, None, root, max_file_bytes, max_video_bytes))
        return _check_job(inv, max_job_bytes, max_images)

    root_fd = os.open(root, DIR_FLAGS)
    denied: list[tuple[str, bool]] = []
    walker = walk(root_fd, "", 1, max_depth + 1, max_entries + 1, denied)
    try:
        count = 0
        for rel, name, st, dir_fd, depth in walker:
            count += 1
            if count > max_entries:
                raise TooManyEntries(format_advice(TooManyEntries), max_entries=max_entries)
            if (missing := _not_downloaded(rel, name)) is not None:
                _add(inv, missing)
                continue
            if is_junk(name) or is_in_progress(name):
                inv.ignored.append(rel)
                continue
            if depth > max_depth:
                raise TooManyEntries(format_advice(TooManyEntries), max_depth=max_depth)
            if depth == 1 and name == JOB_TOML:
                if settings_file:
                    inv.settings = rel  # read (and validated) by jobspec, never an input
                else:
                    _add(inv, _lone_job_toml(rel))
                continue
            if stat.S_ISDIR(st.st_mode):
                continue
            _add(inv, _classify(rel, name, st, dir_fd, root, max_file_bytes, max_video_bytes))
    finally:
        walker.close()  # closes the subfolder descriptors even when a limit stopped the walk
        os.close(root_fd)
    for rel, is_dir in denied:
        _add(inv, _denied(rel, is_dir=is_dir))
    inv.images.sort(key=lambda c: c.rel)
    inv.rejected.sort(key=lambda r: r.rel)
    inv.ignored.sort()
    return _check_job(inv, max_job_bytes, max_images)


def _denied(rel: str, *, is_dir: bool) -> Rejection:
    """Something in the job this user may not read: named, with who and how to fix it."""
    user = effective_user()
    what = "folder (nothing in it was used)" if is_dir else "file"
    return Rejection(rel, PermissionDenied.code, format_advice(PermissionDenied, user=user, what=what))


def _not_downloaded(rel: str, name: str) -> Rejection | None:
    """An iCloud placeholder ``.name.icloud`` as a rejection of ``name``, the file people see.

    It is a dot-file, so it would otherwise be ignored without a word; but it stands for a
    photo the person meant to drop, which is not on this Mac.
    """
    original = icloud_original(name)
    if original is None:
        return None
    where = f"{rel[: -len(name)]}{original}"
    return Rejection(where, NotDownloaded.code, format_advice(NotDownloaded, name=original))


def _lone_job_toml(rel: str) -> Rejection:
    """A job.toml dropped by itself: settings for no photos, refused and said why."""
    return Rejection(rel, UnsupportedType.code, unsupported_message("job_toml"))


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
