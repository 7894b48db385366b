"""Putting a new entry into the inbox: built under a hidden temp name, fsynced, one rename.

``sharpmld submit`` (copying a folder from disk) and the web app's upload (writing a stream)
both deliver this way, so the daemon can never claim half an entry: until the rename the
entry has a dot-name, which the intake ignores, and a failure removes it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from sharpmld.core import fsio
from sharpmld.queue import transitions
from sharpmld.queue.layout import Layout


class Staging:
    """One inbox entry being built at ``path``; ``commit`` publishes it, ``discard`` removes it."""

    def __init__(self, layout: Layout, hint: str) -> None:
        self.layout = layout
        self.path = fsio.temp_name_for(layout.inbox / hint)

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
        if self.path.is_dir() and not self.path.is_symlink():
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


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
