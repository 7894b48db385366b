"""The fd-relative walk of a job's tree, and the cheap signature the readiness rule compares.

Nothing here follows a symbolic link or opens a FIFO, socket or device: folders are opened
with ``O_NOFOLLOW`` relative to their parent's descriptor, so swapping a folder for a symlink
halfway through cannot lead the walk outside the job.
"""

from __future__ import annotations

import itertools
import os
import stat
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

from sharpmld.intake.names import is_in_progress, is_junk

SIGNATURE_MAX_DEPTH = 64
"""tree_signature does not enter folders this deep (bounds recursion and descriptors)."""

OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
"""Open without following a link, and without blocking on a FIFO swapped in after the lstat."""
DIR_FLAGS = OPEN_FLAGS | getattr(os, "O_DIRECTORY", 0)


@dataclass(frozen=True)
class TreeSignature:
    """A cheap, comparable summary of a job's tree; equal signatures mean nothing moved."""

    entries: tuple[tuple[str, str, int, int], ...]
    in_progress: bool
    truncated: bool


def _kind_of(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def walk(
    dir_fd: int,
    prefix: str,
    depth: int,
    descend_below: int,
    cap: int,
    denied: list[tuple[str, bool]] | None = None,
) -> Generator[tuple[str, str, os.stat_result, int, int], None, None]:
    """Yield ``(rel, name, lstat, parent_fd, depth)`` for each entry, without following links.

    Junk and in-progress folders, and folders at ``descend_below`` or deeper, are yielded but
    not entered (this also bounds recursion and open descriptors). Subfolders are opened with
    ``O_NOFOLLOW`` relative to their parent's descriptor, so the walk cannot leave the tree.
    At most ``cap`` entries of one folder are read: past that the caller's limit trips anyway.
    What this user may not read is not yielded but appended to ``denied`` as ``(rel, is_dir)``,
    so that the caller can name it instead of leaving it out unsaid.
    """
    with os.scandir(dir_fd) as it:
        entries = sorted(itertools.islice(it, cap), key=lambda e: e.name)
    for entry in entries:
        rel = f"{prefix}{entry.name}"
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        except PermissionError:  # a folder this user may list but not enter
            if denied is not None:
                denied.append((rel, False))
            continue
        yield rel, entry.name, st, dir_fd, depth
        if (
            stat.S_ISDIR(st.st_mode)
            and depth < descend_below
            and not (is_junk(entry.name) or is_in_progress(entry.name))
        ):
            try:
                sub = os.open(entry.name, DIR_FLAGS, dir_fd=dir_fd)
            except PermissionError:
                if denied is not None:
                    denied.append((rel, True))
                continue
            except OSError:
                continue  # vanished or swapped for a non-folder since the scan
            try:
                yield from walk(sub, f"{rel}/", depth + 1, descend_below, cap, denied)
            finally:
                os.close(sub)


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
        root_fd = os.open(path, DIR_FLAGS)
    except OSError:
        return TreeSignature((), False, False)
    walker = walk(root_fd, "", 1, SIGNATURE_MAX_DEPTH, max_entries + 1)
    try:
        for rel, name, entry_st, _fd, depth in walker:
            if len(entries) >= max_entries:
                truncated = True
                break
            in_progress = in_progress or is_in_progress(name)
            entries.append((rel, _kind_of(entry_st.st_mode), entry_st.st_size, entry_st.st_mtime_ns))
            if depth >= SIGNATURE_MAX_DEPTH and stat.S_ISDIR(entry_st.st_mode) and not is_junk(name):
                truncated = True
    finally:
        walker.close()
        os.close(root_fd)
    return TreeSignature(tuple(entries), in_progress, truncated)
