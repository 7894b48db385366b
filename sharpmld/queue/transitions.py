"""The moves out of ``working/``: to ``done/``, to ``failed/``, or back to the inbox.

Each is one rename of the whole job folder, made after everything inside it is written and
fsynced, so a person never sees a half-finished job in ``done/`` or ``failed/``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from sharpmld.core import fsio
from sharpmld.core.faults import crashpoint
from sharpmld.queue.layout import CANCEL_FILE, LEASE_FILE, PROGRESS_FILE, Layout
from sharpmld.queue.record import Job


def finish(layout: Layout, job: Job, state: str) -> Job:
    """Move ``job`` from ``working/`` to ``done/`` or ``failed/``; return it at its new place."""
    if state not in ("done", "failed"):
        raise ValueError(f"a job finishes in done or failed, not {state!r}")
    for name in (LEASE_FILE, PROGRESS_FILE, CANCEL_FILE):  # a late cancel request is moot
        with contextlib.suppress(FileNotFoundError):
            os.unlink(job.path / name)
    fsio.fsync_dir(job.path)
    target = layout.state(state) / job.job_id
    crashpoint("finishing")
    _rename(job.path, target)
    crashpoint("finished")
    fsio.fsync_dir(layout.working)
    fsio.fsync_dir(target.parent)
    return Job(target, job.record)


def hand_back(layout: Layout, job: Job) -> Path | None:
    """Return the person's files to the inbox untouched and forget the attempt.

    Used on shutdown and on a full disk: nothing about the job was wrong. Returns the inbox
    path, or None when the job held no input (a claim that never completed).
    """
    if job.record.source == "file":
        files = sorted(job.input_dir.iterdir()) if job.input_dir.is_dir() else []
        source = files[0] if files else None
    else:
        source = job.input_dir if job.input_dir.exists() else None
    back: Path | None = None
    if source is not None:
        back = move_without_replacing(source, layout.inbox, job.record.original_name)
        fsio.fsync_dir(layout.inbox)
    shutil.rmtree(job.path, ignore_errors=True)
    fsio.fsync_dir(layout.working)
    return back


def free_name(folder: Path, name: str) -> Path:
    """``folder/name``, or ``name (2)``, ``name (3)``... if taken; keeps a file's extension."""
    candidate = folder / name
    stem, dot, ext = name.rpartition(".")
    if not stem or not dot or len(ext) > 10:
        stem, ext = name, ""
    n = 2
    while candidate.exists() or candidate.is_symlink():
        tail = f" ({n}).{ext}" if ext else f" ({n})"
        candidate = folder / (fsio.fit_name(stem, fsio.MAX_NAME_BYTES - len(os.fsencode(tail))) + tail)
        n += 1
    return candidate


def move_without_replacing(source: Path, folder: Path, name: str, link: fsio.LinkFn = fsio.hard_link) -> Path:
    """Rename ``source`` into ``folder`` under ``name`` or a free variant; never replace anything.

    A plain rename would silently replace a file someone dropped under the same name in the
    meantime. A file goes through ``fsio.move_file_exclusive`` (hard link then unlink, or on
    file systems without links an exclusive reservation then rename); a folder first
    reserves its name with mkdir, then replaces that empty folder of its own. ``link`` is
    injectable so tests can play exFAT.
    """
    for _ in range(1000):
        target = free_name(folder, name)
        try:
            if source.is_dir() and not source.is_symlink():
                target.mkdir()
                os.rename(source, target)
            else:
                fsio.move_file_exclusive(source, target, link)
            return target
        except FileExistsError:
            continue
    raise FileExistsError(f"no free name for {name!r} in {folder}")


def _rename(source: Path, target: Path) -> None:
    """A rename that tolerates NFS's lost replies: ENOENT with the target present is success."""
    try:
        os.rename(source, target)
    except FileNotFoundError:
        if not target.exists():
            raise
