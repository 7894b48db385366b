"""Putting a new entry into the inbox: built under a hidden temp name, fsynced, one rename.

``sharpmld submit`` (copying a folder from disk) and the web app's upload (writing a stream)
both deliver this way, so the daemon can never claim half an entry: until the rename the
entry has a dot-name, which the intake ignores, and a failure removes it. The name carries its
writer's mark, so that an entry whose writer was killed outright (``serve`` stopped mid-upload,
a ``submit`` interrupted by SIGKILL) can be told from one being written: the daemon removes
those with :func:`sweep_abandoned`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path

from sharpmld.core import fsio
from sharpmld.queue import transitions
from sharpmld.queue.layout import Layout
from sharpmld.queue.lease import Owner

# A staged entry whose writer cannot be asked (another host's, or one named before the mark)
# is abandoned once untouched this long: no upload or copy runs for a day without a new file.
UNOWNED_AFTER_SECONDS = 24 * 3600.0


class Staging:
    """One inbox entry being built at ``path``; ``commit`` publishes it, ``discard`` removes it."""

    def __init__(self, layout: Layout, hint: str) -> None:
        self.layout = layout
        self.path = fsio.temp_name_for(layout.inbox / hint, Owner.current().tag())

    def commit(self, name: str) -> Path:
        """Make what was written durable, then rename it into the inbox under ``name`` or a free
        variant of it (never replacing anything); on failure the staged entry is removed."""
        try:
            _sync_tree(self.path)
            target = transitions.move_without_replacing(self.path, self.layout.inbox, name)
        except BaseException:
            self.discard()
            raise
        fsio.fsync_dir(self.layout.inbox)
        return target

    def discard(self) -> None:
        """Remove the staged entry, whatever it is by now (nothing, a file, a folder)."""
        _remove(self.path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def sweep_abandoned(layout: Layout, now_wall: float | None = None) -> list[str]:
    """Remove staged inbox entries whose writer is gone; returns the names removed.

    A writer of this host decides by its mark (pid and start time); any other staged entry
    once it has been untouched for ``UNOWNED_AFTER_SECONDS``.
    """
    now_wall = time.time() if now_wall is None else now_wall
    removed: list[str] = []
    try:
        names = [n for n in os.listdir(layout.inbox) if fsio.is_temp_name(n)]
    except OSError:
        return removed
    for name in names:
        path = layout.inbox / name
        writer = Owner.from_tag(name)
        if writer is not None:
            if writer.is_alive():
                continue
        else:
            try:
                if now_wall - path.lstat().st_mtime < UNOWNED_AFTER_SECONDS:
                    continue
            except FileNotFoundError:
                continue
        _remove(path)
        removed.append(name)
    return removed


def _sync_tree(path: Path) -> None:
    """fsync every regular file and folder under ``path`` (links are not followed)."""
    if not path.is_dir() or path.is_symlink():
        if path.is_file() and not path.is_symlink():
            _sync_file(path)
        return
    for top, _dirs, files in os.walk(path, followlinks=False):
        for name in files:
            full = Path(top) / name
            if full.is_file() and not full.is_symlink():
                _sync_file(full)
        fsio.fsync_dir(Path(top))


def _sync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        fsio.full_fsync(fd)
    finally:
        os.close(fd)
