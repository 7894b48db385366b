"""The inbox watcher: which changes wake the daemon, and what the kernel is asked to report."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sharpmld.intake.watcher import InboxWatcher
from tests.support.harness import wait_for


def test_a_new_folder_in_the_inbox_pokes_the_daemon(tmp_path: Path) -> None:
    pokes: list[int] = []
    watcher = InboxWatcher(tmp_path, lambda: pokes.append(1))
    watcher.start()
    try:
        (tmp_path / "kitchen").mkdir()
        wait_for(lambda: pokes, 10, "a poke for the new folder")
    finally:
        watcher.stop()


def test_a_folder_renamed_in_and_a_file_written_inside_poke_the_daemon(tmp_path: Path) -> None:
    inbox, staging = tmp_path / "inbox", tmp_path / "staging"
    inbox.mkdir()
    (staging / "kitchen").mkdir(parents=True)
    pokes: list[int] = []
    watcher = InboxWatcher(inbox, lambda: pokes.append(1))
    watcher.start()
    try:
        (staging / "kitchen").rename(inbox / "kitchen")  # the safe way to drop a folder
        wait_for(lambda: pokes, 10, "a poke for the folder renamed in")
        seen = len(pokes)
        (inbox / "kitchen" / "IMG_0001.jpg").write_bytes(b"\xff\xd8\xff")
        wait_for(lambda: len(pokes) > seen, 10, "a poke for the file written inside")
    finally:
        watcher.stop()


@pytest.mark.skipif(sys.platform != "linux", reason="inotify's mask is Linux's")
def test_reads_in_the_inbox_are_not_queued_by_the_kernel(tmp_path: Path) -> None:
    """Every scan opens each entry: opens and read-only closes must not be in the inotify mask,
    or a large inbox overflows the kernel's queue on every scan (see ``CHANGES``)."""
    from watchdog.observers.inotify_c import InotifyConstants

    watcher = InboxWatcher(tmp_path, lambda: None)
    watcher.start()
    try:
        emitters = list(watcher._observer.emitters)
        assert emitters
        for emitter in emitters:
            mask = emitter.get_event_mask_from_filter()
            assert not mask & (InotifyConstants.IN_OPEN | InotifyConstants.IN_CLOSE_NOWRITE)
            assert mask & InotifyConstants.IN_MOVE and mask & InotifyConstants.IN_CREATE
    finally:
        watcher.stop()
